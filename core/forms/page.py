"""The hosted signup page as HTML (issue 17): the public service serves it, the Forms tab
previews it in a sandboxed frame, and the embed snippet is its form alone.

Plain HTML and CSS: labelled fields, no JavaScript, a mobile viewport; every text a user
wrote (form name, labels, consent text, the values typed back after an error) is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session

from core.forms.service import HONEYPOT, STAMP, get_form
from core.forms.signup import PublicForm, fill_stamp, public_form
from core.infra.config import settings
from core.infra.permissions import Actor

AUTOCOMPLETE = {
    "first_name": "given-name",
    "last_name": "family-name",
    "company": "organization",
    "city": "address-level2",
    "country": "country-name",
    "phone": "tel",
}
INPUT_TYPES = {"number": "number", "date": "date"}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>
*, *::before, *::after {{ box-sizing: border-box; }}
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       background: #f5f7fa; color: #1f2933; line-height: 1.5; }}
main {{ max-width: 30rem; margin: 2rem auto; padding: 1.5rem; background: white;
       border-radius: .6rem; box-shadow: 0 1px 3px rgba(0,0,0,.12); }}
@media (max-width: 32rem) {{ main {{ margin: 0; border-radius: 0; min-height: 100vh; }} }}
h1 {{ font-size: 1.4rem; margin: 0 0 .3rem; }}
.from {{ color: #616e7c; margin: 0 0 1.2rem; }}
.field {{ margin-bottom: 1rem; }}
label {{ display: block; font-weight: 600; margin-bottom: .25rem; }}
.req {{ color: #b42318; font-weight: normal; }}
input[type=email], input[type=text], input[type=number], input[type=date], input[type=tel] {{
  width: 100%; font: inherit; padding: .55rem .7rem; border: 1px solid #9aa5b1;
  border-radius: .4rem; }}
input:focus-visible, button:focus-visible {{ outline: 3px solid #1f6feb; outline-offset: 2px; }}
.consent {{ font-size: .9rem; color: #3e4c59; margin: 1rem 0; }}
button {{ font: inherit; font-weight: 600; padding: .65rem 1.3rem; border: 0;
          border-radius: .4rem; background: #1f6feb; color: white; cursor: pointer;
          width: 100%; }}
.error {{ background: #fef3f2; border: 1px solid #fda29b; color: #912018;
          padding: .6rem .8rem; border-radius: .4rem; margin-bottom: 1rem; }}
.hp {{ position: absolute; left: -10000px; width: 1px; height: 1px; overflow: hidden; }}
.muted {{ color: #616e7c; font-size: .9rem; }}
fieldset {{ border: 1px solid #cbd2d9; border-radius: .4rem; margin: 0 0 1rem; padding: .6rem .9rem; }}
legend {{ font-weight: 600; padding: 0 .3rem; }}
.check {{ display: flex; gap: .6rem; align-items: flex-start; margin: .4rem 0; }}
.check input {{ width: 1.2rem; height: 1.2rem; margin-top: .2rem; flex: none; }}
.check label {{ font-weight: normal; margin: 0; }}
.check .muted {{ display: block; }}
.notice {{ background: #ecfdf3; border: 1px solid #75e0a7; color: #05603a;
           padding: .6rem .8rem; border-radius: .4rem; margin-bottom: 1rem; }}
a.button {{ display: inline-block; margin-top: 1rem; color: #1f6feb; }}
</style></head>
<body><main>{body}</main></body></html>"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


# Inline too, so the honeypot stays hidden in an embed snippet on a page without our CSS.
HIDDEN = "position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden"


def escape(text: object) -> str:
    return html.escape(str(text), quote=True)


_e = escape


def page(title: str, body: str) -> str:
    """A whole page around `body` (already HTML)."""
    return PAGE.format(title=_e(title), body=body)


def render_form(
    form: PublicForm,
    stamp: str,
    values: Mapping[str, str] | None = None,
    error: str = "",
    action: str = "",
) -> str:
    """The form's HTML (the page body); `values` refill it after a refused post."""
    values = values or {}
    action = action or f"/f/{form.id}"
    parts = [
        f"<h1>{_e(form.name)}</h1>",
        f'<p class="from">{_e(form.workspace_name)}</p>',
    ]
    if error:
        parts.append(f'<p class="error" role="alert" id="form-error">{_e(error)}</p>')
    parts.append(f'<form method="post" action="{_e(action)}" novalidate>')

    def field(key: str, label: str, kind: str, required: bool, autocomplete: str) -> str:
        star = ' <span class="req">(required)</span>' if required else ""
        attrs = " required" if required else ""
        if error:
            attrs += ' aria-describedby="form-error"'
        return (
            f'<div class="field"><label for="f-{_e(key)}">{_e(label)}{star}</label>'
            f'<input id="f-{_e(key)}" name="{_e(key)}" type="{kind}" '
            f'value="{_e(values.get(key, ""))}" autocomplete="{autocomplete}"{attrs}></div>'
        )

    parts.append(field("email", "Email", "email", True, "email"))
    for f in form.fields:
        kind = "tel" if f.key == "phone" else INPUT_TYPES.get(f.type, "text")
        parts.append(field(f.key, f.label, kind, f.required, AUTOCOMPLETE.get(f.key, "off")))
    parts.append(
        f'<div class="hp" aria-hidden="true" style="{HIDDEN}"><label for="f-hp">Leave this field empty</label>'
        f'<input id="f-hp" name="{HONEYPOT}" type="text" tabindex="-1" autocomplete="off"></div>'
        f'<input type="hidden" name="{STAMP}" value="{_e(stamp)}">'
        f'<p class="consent">{_e(form.consent_text)}</p>'
        '<button type="submit">Subscribe</button></form>'
    )
    return "".join(parts)


def embed_snippet(form: PublicForm, base_url: str, stamp: str) -> str:
    """A plain HTML form for another site, posting to the hosted form's URL.

    It carries the honeypot and a fill-time stamp signed now, so a post from it passes
    the minimum fill time (the stamp ages); the honeypot still catches form-filling bots."""
    action = f"{base_url.rstrip('/')}/f/{form.id}"
    body = render_form(form, stamp, action=action)
    form_html = body[body.index("<form") :]
    lines = form_html.replace("><", ">\n<")
    return f'<div class="mailwright-signup">\n{lines}\n</div>'


@dataclass(frozen=True)
class FormLinks:
    """What the Forms tab shows for one form: where it lives, how to embed it, the page."""

    hosted_url: str
    snippet: str
    page_html: str


def form_links(session: Session, actor: Actor, form_id: str) -> FormLinks:
    """The hosted URL, the embed snippet and the hosted page of one of the actor's forms."""
    form = public_form(session, get_form(session, actor, form_id).id)
    base = settings.public_base_url.rstrip("/")
    stamp = fill_stamp(form.id)
    return FormLinks(
        hosted_url=f"{base}/f/{form.id}",
        snippet=embed_snippet(form, base, stamp),
        page_html=page(form.name, render_form(form, stamp)),
    )
