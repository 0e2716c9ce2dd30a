"""Rendering speed: a personalised subject, a ~2 KB HTML body (5 variables, a loop, CSS) and
a text part, rendered for N contacts on one core through core.content.rendering, compared with a
bare (unsandboxed) Jinja2 render of the same compiled sources in the same run.

    python bench/render.py [--scale 1.0]      # scale 1.0 = 100,000 contacts

The bare baseline renders the three parts as three plain Jinja2 templates (unsandboxed,
same sources after footer and CSS inlining); core.content.rendering renders them in one sandboxed
pass. Methods run interleaved in chunks so that load from other processes hits them alike:
bare (unsandboxed Jinja2), sandboxed (CompiledTemplate.render), full (render_for_contact:
variables, signed unsubscribe URL, render) and tracked (full plus click rewriting and the
open pixel, on a fifth of the contacts).
The last line is one JSON object of headline figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("SECRET_KEY", "bench-secret-key-with-enough-length-0123456789")
os.environ.setdefault("DATA_DIR", "/tmp/mailwright-bench")

import jinja2

from core.content.rendering import (
    MailContext,
    compile_template,
    contact_variables,
    render_for_contact,
)

SUBJECT = '{{ first_name | default("Hi there") }}, your {{ custom_fields.plan }} picks are in'
HTML = """<html><head><style>
body{font-family:Helvetica,Arial,sans-serif;color:#222;background:#f6f6f6}
.wrap{max-width:600px;margin:0 auto;background:#fff;padding:24px}
h1{font-size:22px;color:#111}
p{font-size:15px;line-height:1.5}
.pick{border-bottom:1px solid #eee;padding:8px 0}
a.button{background:#0a66c2;color:#fff;padding:10px 18px;border-radius:4px;text-decoration:none}
@media (max-width:600px){.wrap{padding:12px}}
</style></head><body><div class="wrap">
<h1>Hello {{ first_name | default("there") }} {{ last_name }},</h1>
<p>Thanks for being part of {{ company | default("our community") }}. We picked a few things
for you in {{ city | default("your city") }} this week, based on what people on the
{{ custom_fields.plan }} plan liked most. Take a look before the weekend: stock is limited
and the best ones go quickly.</p>
<div class="picks">
{% for pick in custom_fields.picks %}<div class="pick"><strong>{{ loop.index }}.</strong>
<a href="https://shop.example.com/p/{{ pick | lower }}">{{ pick }}</a> &mdash; chosen for
you</div>
{% endfor %}</div>
<p>Every order this week ships free. If you have questions, reply to this email and a real
person from our team will answer within a day. We read everything.</p>
<p><a class="button" href="https://shop.example.com/?utm_source=newsletter">Open the shop</a></p>
<p>Not interested in weekly picks? You can change how often we write in your profile
settings at any time, or leave the list with the link below. We will miss you, but we
understand: inboxes are busy places, and we want ours to be one you look forward to.</p>
<p>See you soon,<br>The team</p>
</div></body></html>"""
TEXT = """Hello {{ first_name | default("there") }} {{ last_name }},

Picks for you in {{ city | default("your city") }} ({{ custom_fields.plan }} plan):
{% for pick in custom_fields.picks %}{{ loop.index }}. {{ pick }} https://shop.example.com/p/{{ pick | lower }}
{% endfor %}
Open the shop: https://shop.example.com/?utm_source=newsletter
"""
FIRST = ["Ann", "Bob", "", "Dana", "Eve", "Frank", "Grace", "", "Ivan", "Judy"]
PICKS = ["Boots", "Sneakers", "Sandals", "Loafers", "Slippers", "Clogs"]


def contacts(n: int) -> list[dict]:
    return [
        {
            "id": i + 1,
            "email": f"c{i}@example.com",
            "first_name": FIRST[i % 10],
            "last_name": "Lee" if i % 3 else "",
            "company": "Initech" if i % 4 else "",
            "city": "Porto",
            "custom_fields": {
                "plan": "pro" if i % 2 else "free",
                "picks": PICKS[i % 3 : i % 3 + 3],
            },
        }
        for i in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 100,000 contacts")
    args = parser.parse_args()
    n = max(1000, int(100_000 * args.scale))
    people = contacts(n)
    ctx = MailContext(workspace_id=1, workspace_name="Acme", postal_address="1 Main St")

    import core.ingest.tracking  # noqa: F401 - load settings before timing anything

    t0 = time.perf_counter()
    compiled = compile_template(SUBJECT, HTML, TEXT)
    compile_ms = (time.perf_counter() - t0) * 1000

    # The bare baseline renders exactly what we render (footer and inlined CSS included).
    bare_html = jinja2.Environment(autoescape=True).from_string(compiled.compiled_html_source)
    bare_text_env = jinja2.Environment(autoescape=False)
    bare_subject = bare_text_env.from_string(SUBJECT)
    bare_text = bare_text_env.from_string(compiled.compiled_text_source)
    variables = [contact_variables(p, unsubscribe_url="https://t.example/u/x") for p in people]

    def bare(chunk: range) -> None:
        for i in chunk:
            v = variables[i]
            bare_subject.render(v)
            bare_html.render(v)
            bare_text.render(v)

    def sandboxed(chunk: range) -> None:
        for i in chunk:
            compiled.render(variables[i])

    def full(chunk: range) -> None:  # variables + signed unsubscribe URL + render
        for i in chunk:
            render_for_contact(compiled, people[i], ctx)

    def tracked(chunk: range) -> None:  # ... plus click rewriting and the open pixel
        for i in chunk:
            render_for_contact(compiled, people[i], ctx, message_id=i, track_opens=True,
                               track_clicks=True)  # fmt: skip

    methods = {"bare": bare, "sandboxed": sandboxed, "full": full, "tracked": tracked}
    # Share of the contacts each method renders: tracking is slow and varies little.
    share = {"bare": 1.0, "sandboxed": 1.0, "full": 1.0, "tracked": 0.2}
    spent = dict.fromkeys(methods, 0.0)
    done = dict.fromkeys(methods, 0)
    step = max(1000, n // 10)
    for start in range(0, n, step):
        for name, method in methods.items():
            chunk = range(start, min(n, start + int(step * share[name])))
            t = time.perf_counter()
            method(chunk)
            spent[name] += time.perf_counter() - t
            done[name] += len(chunk)
    rate = {name: done[name] / seconds for name, seconds in spent.items()}
    sample = render_for_contact(compiled, people[0], ctx)
    load = os.getloadavg()

    print(f"contacts: {n:,}   compile: {compile_ms:.1f} ms   html size: {len(sample.html):,} B")
    for name in methods:
        print(
            f"{name:>10}: {rate[name]:>9,.0f} messages/s  ({done[name]:,} in {spent[name]:.2f} s)"
        )
    print(f"ratio full/bare: {rate['full'] / rate['bare']:.2f}  (goal >= 0.5; >= 10,000/s)")
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(
        json.dumps(
            {
                "contacts": n,
                "bare_per_s": round(rate["bare"]),
                "sandboxed_per_s": round(rate["sandboxed"]),
                "full_per_s": round(rate["full"]),
                "tracked_per_s": round(rate["tracked"]),
                "ratio_sandboxed_to_bare": round(rate["sandboxed"] / rate["bare"], 3),
                "ratio_full_to_bare": round(rate["full"] / rate["bare"], 3),
                "compile_ms": round(compile_ms, 1),
                "html_bytes": len(sample.html),
                "loadavg_1m": round(load[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
