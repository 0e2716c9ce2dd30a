"""The visual template editor (issue 16) in headless Chromium: variables show as chips, the
toolbar's Variables and Image menus insert at the cursor, an unchanged template saves
byte for byte, and a template's own script never runs in the editor."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.infra.db import session_scope
from core.models import Template, User
from tests.browser.conftest import backend, live_app, page, sign_in  # noqa: F401

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


def test_insert_a_variable_and_an_image_at_the_cursor(live_app, page, tmp_path):  # noqa: F811
    _seed_template()
    sign_in(page, live_app)
    page.goto(f"{live_app.url}/templates")
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
