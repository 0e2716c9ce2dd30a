"""core/content/rendering.py: the one sandboxed render path (no database needed)."""

from __future__ import annotations

import re

import pytest

from core.content.rendering import (
    MailContext,
    TemplateProblem,
    compile_template,
    contact_variables,
    render_for_contact,
    unknown_variables,
)
from core.ingest import tracking

CTX = MailContext(workspace_id=7, workspace_name="Acme", postal_address="1 Main St, Springfield")


def render(html: str, subject: str = "Hi", text: str | None = None, **contact):
    contact.setdefault("email", "ann@example.com")
    return render_for_contact(compile_template(subject, html, text), contact, CTX)


def test_missing_values_fall_back_to_defaults_and_render_empty_otherwise():
    html = (
        '<p>Hi {{ first_name | default("there") }} from {{ company }}.'
        ' Plan: {{ custom_fields.plan | default("free") }}'
        " Tier: {{ custom_fields.tier }}!</p>"
    )
    out = render(html, subject="{{ first_name | default('friend') }}, news")
    assert "Hi there from ." in out.html and "Plan: free" in out.html and "Tier: !" in out.html
    assert out.subject == "friend, news"
    # A blank value counts as missing, so the default applies too.
    out = render(html, first_name="", custom_fields={"plan": "pro", "tier": ""})
    assert "Hi there" in out.html and "Plan: pro" in out.html
    out = render(html, first_name="Ann", company="Initech")
    assert "Hi Ann from Initech." in out.html


def test_html_is_escaped_but_subject_and_text_are_not():
    out = render(
        "<p>{{ first_name }}</p>",
        subject="For {{ first_name }}",
        text="Dear {{ first_name }}",
        first_name='<script>alert("x")</script> & Co',
    )
    assert "<script>" not in out.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co" in out.html
    assert out.subject == 'For <script>alert("x")</script> & Co'
    assert out.text.startswith('Dear <script>alert("x")</script> & Co')
    # A newline in a value cannot add a header line to the subject.
    assert render("<p/>", subject="{{ first_name }}", first_name="a\nBcc: x@y").subject == (
        "a Bcc: x@y"
    )


@pytest.mark.parametrize(
    "attack",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ joiner.__init__.__globals__ }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ lipsum.__globals__['os'] }}",
        "{{ self.__init__.__globals__ }}",
        "{{ request.application.__globals__ }}",
        "{{ config.__class__ }}",
        "{{ first_name['__class__'] }}",
        "{{ ''|attr('__class__') }}",
        "{% import 'os' as os %}",
        "{% include '/etc/passwd' %}",
        "{% extends '/etc/passwd' %}",
        "{% from 'x' import y %}",
    ],
)
def test_injection_attempts_are_refused_at_compile_time(attack):
    with pytest.raises(TemplateProblem) as err:
        compile_template("s", f"<p>ok</p>\n{attack}")
    assert err.value.line == 2


@pytest.mark.parametrize(
    "attack",
    [
        "{{ ''.format.__self__ }}",
        "{% set x = 'a' %}{{ x.format('{0.__class__}') }}",
        "{{ first_name.format(1) }}",
        "{{ 'a' * 100000 }}",
        "{{ [1] * 100000 }}",
        "{{ 9 ** 999999 }}",
        "{{ range(10**9) | list }}",
        "{% set g = cycler %}{{ g() }}",
        "{{ custom_fields.items() }}",
        "{{ email.encode() }}",
    ],
)
def test_unsafe_calls_fail_safely(attack):
    try:
        compiled = compile_template("s", attack)
    except TemplateProblem:
        return  # refused before it could run
    with pytest.raises(TemplateProblem) as err:
        compiled.render(contact_variables({"email": "a@b.c", "first_name": "Ann"}))
    assert any(word in str(err.value) for word in ("not allowed", "too costly", "too big"))
    assert "0x" not in str(err.value)  # no Python internals in the message


def test_allowed_filters_and_string_methods_still_work():
    out = render(
        "{{ first_name.title() }} {{ last_name | upper }} {{ email.split('@')[1] }} "
        "{% for i in range(3) %}{{ loop.index }}{% endfor %} {{ 'ab' * 2 }}",
        first_name="ann",
        last_name="lee",
    )
    assert "Ann LEE example.com 123 abab" in out.html


@pytest.mark.parametrize(
    ("source", "part", "line", "words"),
    [
        ("<p>one</p>\n<p>{{ first_name }</p>", "html", 2, "unexpected '}'"),
        ("<p>a</p>\n\n{% if first_name %}\n<p>b</p>", "html", 4, "endif"),
        ("<p>a</p>\n{% for x in %}{% endfor %}", "html", 2, "Expected an expression"),
        ("<p>{{ first_name | nosuchfilter }}</p>", "html", 1, "No filter named 'nosuchfilter'"),
    ],
)
def test_syntax_errors_name_the_part_and_line(source, part, line, words):
    with pytest.raises(TemplateProblem) as err:
        compile_template("Subject", source)
    assert err.value.part == part and err.value.line == line
    assert words in str(err.value)
    assert f"line {line}" in str(err.value)


def test_errors_in_subject_and_text_name_their_part():
    with pytest.raises(TemplateProblem) as err:
        compile_template("Hi {{ first_name", "<p>x</p>")
    assert err.value.part == "subject" and err.value.line == 1
    with pytest.raises(TemplateProblem) as err:
        compile_template("Hi", "<p>x</p>", "line\nline\n{% endfor %}")
    assert err.value.part == "text" and err.value.line == 3


def test_footer_is_added_when_the_template_has_no_unsubscribe_link():
    out = render("<html><body><p>News</p></body></html>", text="Plain news")
    unsubscribe = tracking.unsubscribe_url(7, 0)
    assert out.html.index("Unsubscribe") < out.html.index("</body>")
    assert f'href="{unsubscribe}"' in out.html and "1 Main St, Springfield" in out.html
    assert f"Unsubscribe: {unsubscribe}" in out.text and "1 Main St" in out.text
    # A template that places the link itself gets no second footer.
    own = render(
        '<p>News</p><a href="{{ unsubscribe_url }}">Leave</a>', text="{{ unsubscribe_url }}"
    )
    assert own.html.count(unsubscribe) == 1 and "Unsubscribe" not in own.html
    assert own.text.strip() == unsubscribe


def test_css_is_inlined_at_compile_time_and_template_tags_survive():
    html = (
        "<html><head><style>p.lead{color:#c00;font-size:18px} a{color:#06c}"
        " @media (max-width:600px){p.lead{font-size:14px}}</style></head><body>"
        '<p class="lead">Hi {{ first_name | default("there") }}</p>'
        "<ul>{% for i in range(2) %}<li>{{ i }}</li>{% endfor %}</ul>"
        '<a href="https://example.com/?e={{ email }}&x=1">Shop</a></body></html>'
    )
    compiled = compile_template("s", html)
    assert not compiled._inline_each  # done once, not per message
    assert 'style="color: #c00;font-size: 18px;"' in compiled.compiled_html_source
    out = render(html, first_name="Ann")
    assert '<p class="lead" style="color: #c00;font-size: 18px;">Hi Ann</p>' in out.html
    assert "<ul><li>0</li><li>1</li></ul>" in out.html
    assert 'href="https://example.com/?e=ann@example.com&amp;x=1" style="color: #06c;"' in (
        out.html
    )
    assert "@media (max-width:600px)" in out.html  # kept for mobile clients


def test_css_inlining_falls_back_per_message_when_markup_would_move_tags():
    # Rows generated by a loop: an HTML parser adds <tbody> around the loop's rows.
    html = (
        "<html><head><style>td{padding:4px}</style></head><body><table>"
        "{% for i in range(2) %}<tr><td>{{ i }}</td></tr>{% endfor %}</table></body></html>"
    )
    compiled = compile_template("s", html)
    assert compiled._inline_each
    out = render(html)
    assert out.html.count('<td style="padding: 4px;">') == 2
    assert re.search(r"<td[^>]*>0</td></tr><tr><td[^>]*>1</td>", out.html)


def test_click_tracking_and_open_pixel():
    html = (
        '<p><a href="https://shop.example.com/a?b=1&amp;c=2">Shop</a> '
        '<a href="mailto:x@example.com">Mail</a> <a href="{{ unsubscribe_url }}">Leave</a></p>'
    )
    compiled = compile_template("s", html)
    contact = {"id": 42, "email": "ann@example.com"}
    out = render_for_contact(
        compiled, contact, CTX, message_id=99, track_opens=True, track_clicks=True
    )
    tracked = tracking.click_url(7, 99, "https://shop.example.com/a?b=1&c=2")
    assert f'href="{tracked}"' in out.html
    assert tracking.parse_click(tracked.rsplit("/", 1)[1]).url == (
        "https://shop.example.com/a?b=1&c=2"
    )
    assert 'href="mailto:x@example.com"' in out.html
    assert f'href="{tracking.unsubscribe_url(7, 42, 99)}"' in out.html  # not wrapped
    assert out.html.endswith(
        f'<img src="{tracking.open_url(7, 99)}" width="1" height="1" '
        'alt="" style="display:block;border:0;width:1px;height:1px">'
    )
    # Without a message (preview, test send) nothing is tracked.
    plain = render_for_contact(compiled, contact, CTX, track_opens=True, track_clicks=True)
    assert "/t/" not in plain.html


def test_unknown_variables_are_listed():
    sources = [
        "{{ first_name }} {{ frist_name }} {{ custom_fields.plan }} {{ custom_fields['tier'] }}",
        "{% for item in items %}{{ item }}{{ loop.index }}{% endfor %}{% set z = 1 %}{{ z }}",
    ]
    known = {"first_name", "custom_fields.plan"}
    assert unknown_variables(sources, known) == ["custom_fields.tier", "frist_name", "items"]


def test_the_one_pass_render_equals_rendering_each_part():
    html = "<p>{{ first_name | default('x') }}</p>\n{% for i in range(2) %}{{ i }}\n{% endfor %}\n"
    text = "Hi {{ first_name }}\r\n{% if company %}{{ company }}{% endif %}\n"
    compiled = compile_template("{{ first_name }} <&> ", html, text)
    for contact in ({"first_name": "A&B <x>", "company": "C\n"}, {}):
        variables = contact_variables(contact, unsubscribe_url="https://u.example/x")
        subject, html_out, text_out = compiled._render_parts(variables)
        out = compiled.render(variables)
        assert out.subject == " ".join(subject.split())
        assert (out.html, out.text) == (html_out, text_out)


def test_render_errors_name_the_part():
    compiled = compile_template("{{ custom_fields.n + 1 }}", "<p>{{ custom_fields.n + 1 }}</p>")
    with pytest.raises(TemplateProblem) as err:
        compiled.render(contact_variables({"custom_fields": {"n": "seven"}}))
    assert err.value.part == "subject" and "TypeError" in str(err.value)
    compiled = compile_template("ok", "<p>ok</p>", "{{ email.zfill(3) }}")
    with pytest.raises(TemplateProblem) as err:
        compiled.render(contact_variables({"email": "a@b.c"}))
    assert err.value.part == "text" and "not allowed" in str(err.value)


def test_the_generated_text_part_writes_links_as_text_mail_does():
    """Issue 16: `See the offer: https://…`, not Markdown's `[See the offer](<https://…>)`."""
    out = render(
        '<p>Hi {{ first_name }}, <a href="https://shop.example/o?a=1&amp;b=2">See the offer</a>'
        ' today.</p><p><a href="https://shop.example/">https://shop.example/</a> · '
        '<a href="mailto:help@shop.example">Write to us</a> · '
        '<a href="mailto:help@shop.example">help@shop.example</a> · <a href="#top">Top</a></p>'
        '<p><a href="https://shop.example/b"><img src="https://shop.example/b.png" alt=""></a></p>'
        '<ul><li><a href="https://shop.example/s"><strong>Shoes</strong></a></li></ul>'
        '<p><a href="{{ unsubscribe_url }}">Leave this list</a></p>',
        first_name="Ann",
    )
    text = out.text
    assert "See the offer: https://shop.example/o?a=1&b=2 today." in text
    assert "](" not in text and "<https" not in text
    assert "https://shop.example/ · Write to us: help@shop.example · help@shop.example · Top" in (
        text
    )
    assert "\nhttps://shop.example/b\n" in text  # a linked image: the address alone
    assert "* **Shoes**: https://shop.example/s" in text
    assert f"Leave this list: {tracking.unsubscribe_url(7, 0)}" in text
