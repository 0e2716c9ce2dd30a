"""The visual (Quill) editor in headless Chromium: type, format, save; the toolbar offers
no Quill image button (it would embed images as base64): images go by URL through our
Image menu (tests/browser/test_template_editor.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.infra.db import session_scope
from core.models import Template
from tests.browser.conftest import backend, live_app, page, sign_in  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _frame_showing(browser_page, text: str):
    """The (nested, sandboxed) frame whose page shows `text`."""
    for _ in range(150):
        for frame in browser_page.frames:
            try:
                if text in frame.inner_text("body", timeout=1000):
                    return frame
            except Exception:
                continue
        browser_page.wait_for_timeout(200)
    raise AssertionError(f"no frame shows {text!r}")


def test_write_a_template_in_the_visual_editor(live_app, page, tmp_path):  # noqa: F811
    sign_in(page, live_app)
    page.goto(f"{live_app.url}/templates")
    page.get_by_role("button", name="New template").click()
    page.get_by_label("Name", exact=True).fill("Spring")
    page.get_by_label("Default subject", exact=True).fill("Spring is here, {{ first_name }}")
    page.get_by_label("Default subject", exact=True).press("Enter")

    quill = page.frame_locator('iframe[title*="quill_editor"]')
    editor = quill.locator(".ql-editor")
    editor.wait_for()
    assert quill.locator(".ql-toolbar button.ql-bold").count() == 1
    assert quill.locator(".ql-toolbar .ql-image").count() == 0
    editor.click()
    page.keyboard.press("Control+End")
    page.keyboard.press("Enter")
    page.keyboard.press("Control+b")
    page.keyboard.type("Big news")
    page.keyboard.press("Control+b")
    page.keyboard.type(" for everyone.")
    # The preview (sample data) follows the editor once Streamlit reruns.
    page.get_by_text("Subject: Spring is here, Alex").wait_for()
    frame = _frame_showing(page, "Big news for everyone.")
    assert frame.locator("strong", has_text="Big news").count() == 1
    page.locator("code").filter(has_text="Big news").first.wait_for()  # the text part
    page.get_by_role("button", name="Save template").click()
    page.get_by_text("Saved.").wait_for()
    page.screenshot(path=str(tmp_path / "editor.png"), full_page=True)
    with session_scope() as session:
        html = session.scalars(select(Template.html)).one()
    assert "<strong>Big news</strong> for everyone." in html
    assert 'Hello {{ first_name | default("there") }},' in html.replace("&quot;", '"')
