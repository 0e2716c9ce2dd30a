"""The visual template editor (issue 16) in headless Chromium: variables show as chips, the
toolbar's Variables and Image menus insert at the cursor, an unchanged template saves
byte for byte, and a template's own script never runs in the editor."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from core.infra.db import session_scope
from core.models import Template, User
from tests.browser.conftest import backend, live_app, page, sign_in  # noqa: F401
from ui.quill_editor import FRONTEND

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BODY = (
    '<p>Hello {{ first_name | default("friend") }}, thanks for joining us today.</p>\n'
    # Hostile on purpose: neither may run in the app's origin.
    '<p><img src="https://img.invalid/x.png" onerror="window.top.__tplPwned = 1"></p>'
    "<script>window.top.__tplPwned = 2</script>"
)

# Where the browser should put the caret: just after `word` in the editor's text `p`.
CARET_AFTER = """(p, word) => {
    const walker = document.createTreeWalker(p, NodeFilter.SHOW_TEXT);
    let node;
    while ((node = walker.nextNode()) && !node.textContent.includes(word));
    const range = document.createRange();
    const at = node.textContent.indexOf(word) + word.length;
    range.setStart(node, at);
    range.setEnd(node, at);
    const r = range.getBoundingClientRect(), box = p.getBoundingClientRect();
    return {x: r.left - box.left, y: r.top - box.top + r.height / 2};
}"""


def _seed_template() -> None:
    with session_scope() as session:
        workspace_id = session.scalars(select(User.workspace_id)).one()
        session.add(Template(workspace_id=workspace_id, name="Welcome", subject="Hi", html=BODY))


def _stored_html() -> str:
    with session_scope() as session:
        return session.scalars(select(Template.html).where(Template.name == "Welcome")).one()


def _wait_for_preview(browser_page, selector: str) -> None:
    """Until the (nested, sandboxed) preview frame shows `selector`."""
    from playwright.sync_api import Error

    for _ in range(150):
        for frame in browser_page.frames:
            try:
                if "quill_editor" not in frame.url and frame.locator(selector).count():
                    return
            except Error as exc:  # a rerun replaced this frame while we looked: look again
                if "detached" not in str(exc) and "has been closed" not in str(exc):
                    raise
        browser_page.wait_for_timeout(200)
    raise AssertionError(f"the preview never showed {selector}")


def test_insert_a_variable_and_an_image_at_the_cursor(live_app, page, tmp_path):  # noqa: F811
    _seed_template()
    sign_in(page, live_app)
    page.get_by_role("link", name="Templates").click()  # as a person would, no reload
    page.get_by_role("button", name="Edit").click()
    editor = page.frame_locator('iframe[title*="quill_editor"]')
    body = editor.locator(".ql-editor")
    body.wait_for()

    # The variable reads as a chip (label and fallback), not as raw Jinja.
    chip = body.locator(".mw-var").first
    chip.wait_for()
    assert chip.inner_text().replace("\ufeff", "") == "First namefriend"
    assert chip.get_attribute("data-source") == '{{ first_name | default("friend") }}'
    assert "{{" not in body.inner_text()
    # The template's onerror handler and script did not run, in the app or in the editor.
    assert page.evaluate("window.__tplPwned") is None
    assert body.locator("img[onerror]").count() == 0 and body.locator("script").count() == 0

    # Opened and saved without a change: the body is byte-identical.
    page.get_by_role("button", name="Save template").click()
    page.get_by_text("Saved.").wait_for()
    assert _stored_html() == BODY

    # The caret in the middle of the text, by a click; a variable from the toolbar menu.
    first = body.locator("p").first
    first.click(position=first.evaluate(CARET_AFTER, "joining"))
    editor.get_by_role("button", name="Variables ▾").click()
    editor.get_by_role("menuitem", name="Company").click()
    company = body.locator('.mw-var[data-source="{{ company }}"]')
    company.wait_for()
    assert company.inner_text().replace("\ufeff", "") == "Company"

    # And an image after "today.", by URL, with its alternative text.
    first.click(position=first.evaluate(CARET_AFTER, "today."))
    editor.get_by_role("button", name="Image ▾").click()
    editor.get_by_label("Image URL").fill("https://cdn.example/banner.png")
    editor.get_by_label("Alternative text").fill("Spring banner")
    editor.get_by_role("button", name="Insert image").click()
    body.locator('img[src="https://cdn.example/banner.png"]').wait_for()

    # The preview (sample data) follows once Streamlit has the new body.
    page.get_by_text("thanks for joiningExample Ltd us today.").first.wait_for()
    _wait_for_preview(page, 'img[src="https://cdn.example/banner.png"]')
    page.screenshot(path=str(tmp_path / "editor.png"), full_page=True)
    page.get_by_role("button", name="Save template").click()
    page.get_by_text("Saved.").wait_for()
    html = _stored_html()
    assert html.startswith(
        '<p>Hello {{ first_name | default("friend") }}, thanks for joining{{ company }} us '
        'today.<img src="https://cdn.example/banner.png"'
    ), html
    assert 'alt="Spring banner"' in html and 'style="max-width:100%;height:auto"' in html
    # Quill kept only what it knows: no handler, no script, not even as text.
    assert "onerror" not in html and "script" not in html and "tplPwned" not in html
    assert page.evaluate("window.__tplPwned") is None


# Streamlit's side of the component protocol, for the component alone (no app server).
HOST = """<!doctype html><body><iframe id="f" src="%s/index.html" style="width:900px;height:500px">
</iframe><script>
window.values = []; window.ready = false;
addEventListener("message", (e) => {
  const d = e.data;
  if (!d || !d.isStreamlitMessage) return;
  if (d.type === "streamlit:componentReady") window.ready = true;
  if (d.type === "streamlit:setComponentValue") window.values.push(d.value);
});
window.render = (args) => document.getElementById("f").contentWindow.postMessage(
  {type: "streamlit:render", args: args, dfs: [], disabled: false, theme: {}}, "*");
</script>"""
SOURCE = (
    '<p class="ql-align-center">Hi {{ first_name | default("friend") }}, '
    '<a href="{{ unsubscribe_url }}">leave</a> <a href="javascript:alert(1)">x</a> '
    "<strong>now</strong></p>\n<ul><li>One</li><li>Two</li></ul>"
)


@pytest.fixture
def frontend_url():
    """The component's static files over HTTP, as Streamlit serves them."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(FRONTEND))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_component_sends_exact_jinja_and_nothing_until_an_edit(page, frontend_url):  # noqa: F811
    page.set_content(HOST % frontend_url)
    page.wait_for_function("window.ready")
    variables = [{"name": "first_name", "label": "First name", "group": "Contact"}]
    page.evaluate(
        "([value, variables]) => render({value, variables, version: 'k1', height: 300})",
        [SOURCE, variables],
    )
    body = page.frame_locator("#f").locator(".ql-editor")
    body.locator(".mw-var").wait_for()
    page.wait_for_timeout(700)  # longer than the editor's debounce
    assert page.evaluate("window.values") == []  # unchanged: Python keeps its bytes

    # A tag typed as text becomes a chip too; the HTML carries every tag exactly.
    body.click()
    page.keyboard.press("Control+End")
    page.keyboard.type(" and {{ city }}!")
    body.locator('.mw-var[data-source="{{ city }}"]').wait_for()
    page.wait_for_function("window.values.length > 0")
    assert page.evaluate("window.values.at(-1)") == (
        '<p style="text-align: center;">Hi {{ first_name | default("friend") }}, '
        '<a href="{{ unsubscribe_url }}" rel="noopener noreferrer" target="_blank">leave</a> '
        '<a href="about:blank" rel="noopener noreferrer" target="_blank">x</a> '
        "<strong>now</strong></p><ul><li>One</li><li>Two and {{ city }}!</li></ul>"
    )
    # Undone back to the start: the source as it came, byte for byte.
    for _ in range(20):
        page.keyboard.press("Control+z")
    page.wait_for_function("(s) => window.values.at(-1) === s", arg=SOURCE)
