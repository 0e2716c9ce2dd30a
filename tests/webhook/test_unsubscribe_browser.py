"""A reader unsubscribes through the page in headless Chromium, served by real uvicorn."""

from __future__ import annotations

import pytest

from core.infra.config import settings
from core.infra.db import session_scope
from core.ingest.tracking import unsubscribe_url
from core.models import Contact, Suppression
from tests.browser.conftest import page  # noqa: F401 - the Chromium fixture
from tests.processes import process_env, start_webhook
from tests.webhook.conftest import make_ledger

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """The page is what is under test here; the data layer is tested on both backends."""
    return request.param


def test_unsubscribe_page_in_a_browser(live_db, page, tmp_path):  # noqa: F811
    with session_scope() as session:
        ledger = make_ledger(session, recipients=1, name="Acme & Sons News")
    message = ledger.messages[0]
    env = process_env(tmp_path, live_db, SECRET_KEY=settings.secret_key)
    proc, base = start_webhook(env, tmp_path / "webhook.log")
    try:
        url = unsubscribe_url(ledger.workspace.id, message.contact_id, message.id)
        page.goto(base + url.removeprefix(settings.public_base_url))
        page.get_by_role("heading", name="Unsubscribe from Acme & Sons News").wait_for()
        assert page.get_by_text(message.email).is_visible()
        page.screenshot(path=str(tmp_path / "unsubscribe.png"))
        page.get_by_role("button", name="Unsubscribe").click()
        page.get_by_role("heading", name="You are unsubscribed").wait_for()
        page.screenshot(path=str(tmp_path / "unsubscribed.png"))
    finally:
        proc.stop()
    with session_scope() as session:
        assert session.get(Contact, message.contact_id).status == "unsubscribed"
        assert session.query(Suppression).filter_by(email=message.email).count() == 1
