"""A recipient manages their subscription from a campaign mail in headless Chromium
(issue 17): a real worker sends the campaign to the outbox, the mail's "Email preferences"
link opens the preference centre on the real webhook process, the person changes lists
and name, downloads their data, and unsubscribes from everything; every change is a
consent row."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from core.campaigns import service as campaigns
from core.infra.config import settings
from core.infra.db import session_scope
from core.models import Consent, Contact, ContactList, ListMembership
from tests.browser.conftest import page  # noqa: F401 - the Chromium fixture
from tests.helpers import message_text, outbox_messages
from tests.processes import process_env, start_webhook, start_worker, wait_until
from tests.sending.builders import make_campaign, make_setup

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SHOTS = os.environ.get("MAILWRIGHT_SHOTS", "")  # a folder to keep the screenshots in


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """The pages and processes are under test here; core runs on both backends elsewhere."""
    return request.param


def _shot(page, tmp_path: Path, name: str) -> None:  # noqa: F811
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(SHOTS) / path.name)


def test_preference_centre_from_a_campaign_mail(live_db, page, tmp_path):  # noqa: F811
    with session_scope() as session:
        setup = make_setup(session, contacts=1)
        customers = session.get(ContactList, setup.list_id)
        customers.visibility = "public"
        customers.description = "Orders, invoices and offers for customers"
        newsletter = session.get(ContactList, setup.other_list_id)
        newsletter.visibility = "public"
        newsletter.description = "Once a month, what is new at Acme"
        session.add(ContactList(workspace_id=setup.workspace_id, name="Secret VIP"))
        cid = make_campaign(session, setup)
    data = tmp_path / "data"
    env = process_env(data, live_db, SECRET_KEY=settings.secret_key)
    webhook, base = start_webhook(env, tmp_path / "webhook.log")
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        with session_scope() as session:
            campaigns.send_now(session, setup.actor, cid)
        outbox = data / "outbox"
        wait_until(lambda: len(outbox_messages(outbox)) == 1, 60, "the campaign mail")
        [message] = outbox_messages(outbox)
        link = re.search(r"Email preferences: (\S+/p/\S+)", message_text(message))
        assert link is not None, "the footer offers the preference centre"
        path = "/p/" + link.group(1).split("/p/", 1)[1]

        page.set_viewport_size({"width": 1400, "height": 1000})
        page.goto(f"{base}{path}")
        page.get_by_role("heading", name="Email preferences").wait_for()
        assert page.get_by_label("Customers").is_checked()
        assert page.get_by_label("Newsletter").is_checked()
        assert page.get_by_text("Secret VIP").count() == 0  # private lists are never shown
        _shot(page, tmp_path, "preferences-centre")
        page.get_by_label("Newsletter").uncheck()
        page.get_by_label("First name").fill("Ada")
        page.get_by_role("button", name="Save my preferences").click()
        page.get_by_role("status").filter(has_text="Left: Newsletter").wait_for()
        assert not page.get_by_label("Newsletter").is_checked()
        assert page.get_by_label("First name").input_value() == "Ada"
        _shot(page, tmp_path, "preferences-saved")

        with page.expect_download() as download:
            page.get_by_role("link", name="Download my data (JSON)").click()
        held = json.loads(Path(download.value.path()).read_text())
        assert held["fields"]["first_name"] == "Ada"
        assert held["lists"] == ["Customers"]
        assert held["messages"][0]["campaign"] == "Launch"

        page.get_by_label("Unsubscribe from everything").check()
        page.get_by_role("button", name="Save my preferences").click()
        page.get_by_role("status").filter(has_text="unsubscribed from everything").wait_for()
        _shot(page, tmp_path, "preferences-unsubscribed")
    finally:
        worker.stop()
        webhook.stop()
    with session_scope() as session:
        contact = session.scalar(select(Contact).where(Contact.workspace_id == setup.workspace_id))
        assert contact.status == "unsubscribed" and contact.first_name == "Ada"
        assert (
            session.scalar(
                select(ListMembership.list_id).where(ListMembership.contact_id == contact.id)
            )
            is None
        )
        rows = session.scalars(
            select(Consent).where(Consent.contact_id == contact.id).order_by(Consent.id)
        ).all()
        assert [(r.action, r.source, r.list_ids) for r in rows] == [
            ("unsubscribe", "preferences", [setup.other_list_id]),
            ("unsubscribe", "preferences", [setup.list_id]),
            ("unsubscribe", "preferences", []),
        ]
        assert all(r.user_agent for r in rows)  # the browser's
