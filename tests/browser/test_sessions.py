"""A session ends on the server: a copied cookie dies with sign-out, "Sign out everywhere"
ends the others, and a removed user lands on the sign-in form (issue 14.2)."""

from __future__ import annotations

import pytest

from core.accounts import auth, members
from core.infra.db import session_scope
from tests.apptest_db import seed_user
from tests.browser.conftest import LiveApp, sign_in
from tests.browsers import CONTEXT
from tests.helpers import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _session_cookie(page) -> dict:
    return next(c for c in page.context.cookies() if c["name"] == "mailwright_session")


def _with_cookie(page, cookie: dict):
    """A second browser that holds a copy of `cookie` (a stolen or synced session)."""
    context = page.context.browser.new_context(**CONTEXT)
    context.add_cookies([cookie])
    other = context.new_page()
    other.set_default_timeout(45_000)
    return other


def _signed_in_at_settings(other, app: LiveApp) -> bool:
    other.goto(f"{app.url}/settings")
    settings = other.get_by_role("heading", name="Settings")
    sign_in_button = other.get_by_role("button", name="Sign in")
    settings.or_(sign_in_button).first.wait_for()
    return settings.count() > 0


def test_sign_out_and_sign_out_everywhere_end_copies_of_the_cookie(live_app, page):
    sign_in(page, live_app)
    copy = _with_cookie(page, _session_cookie(page))
    assert _signed_in_at_settings(copy, live_app), "a copy of a live cookie signs in"

    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in").wait_for()
    assert not _signed_in_at_settings(copy, live_app), "sign-out must end the copied cookie too"
    copy.context.close()

    sign_in(page, live_app, "settings", "Settings")
    copy = _with_cookie(page, _session_cookie(page))
    assert _signed_in_at_settings(copy, live_app)
    page.get_by_role("tab", name="Your profile").click()
    page.get_by_role("button", name="Sign out everywhere").click()
    page.get_by_text("You have been signed out everywhere").wait_for()
    assert not _signed_in_at_settings(copy, live_app)
    copy.context.close()


def test_a_removed_user_gets_the_sign_in_form_not_a_traceback(live_app, page):
    editor = LiveApp(**{**live_app.__dict__, "email": seed_user("editor"), "password": PASSWORD})
    sign_in(page, editor, "contacts", "Contacts")
    with session_scope() as session:
        owner = auth.actor_for(auth.get_user_by_email(session, live_app.email))
        members.remove_user(session, owner, auth.get_user_by_email(session, editor.email).id)
    page.goto(f"{live_app.url}/contacts")
    page.get_by_role("button", name="Sign in").wait_for()
    text = page.locator("body").inner_text()
    assert "LoginError" not in text and "not authorized" not in text
    page.reload()
    page.get_by_role("button", name="Sign in").wait_for()
    assert "Traceback" not in page.locator("body").inner_text()
