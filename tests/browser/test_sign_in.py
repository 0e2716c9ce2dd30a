"""A person signs in through the real form in headless Chromium and sees the dashboard."""

from __future__ import annotations

import pytest

from tests.browser.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_sign_in_shows_the_dashboard(live_app, page, tmp_path):
    sign_in(page, live_app)
    assert page.get_by_text(f"Signed in as {live_app.email}").is_visible()
    page.screenshot(path=str(tmp_path / "dashboard.png"))

    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in").wait_for()
    page.screenshot(path=str(tmp_path / "signed-out.png"))
    # The cookie is gone too: a reload does not sign back in.
    for _ in range(50):
        if not any(c["name"] == "mailwright_session" for c in page.context.cookies()):
            break
        page.wait_for_timeout(200)
    page.reload()
    page.get_by_role("button", name="Sign in").wait_for()
    assert not page.get_by_text("Signed in as").count()


def test_wrong_password_in_the_browser(live_app, page):
    page.goto(live_app.url)
    page.get_by_label("Email", exact=True).fill(live_app.email)
    page.get_by_label("Password", exact=True).fill("not-the-password-1")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Wrong email or password").wait_for()


def test_session_survives_a_reload_and_ends_after_a_password_reset(live_app, page, outbox):
    import re

    from core.accounts.auth import request_password_reset, reset_password
    from core.infra.db import session_scope
    from tests.helpers import message_text, outbox_messages

    sign_in(page, live_app)
    page.goto(f"{live_app.url}/settings")
    page.get_by_role("heading", name="Settings").wait_for()

    # Elsewhere, the password is reset: this browser's session must end.
    with session_scope() as session:
        request_password_reset(session, live_app.email)
    token = re.search(r"token=([\w-]+)", message_text(outbox_messages(outbox)[-1])).group(1)
    with session_scope() as session:
        reset_password(session, token, "a-new-password-99")
    page.goto(f"{live_app.url}/settings")
    page.get_by_role("button", name="Sign in").wait_for()
