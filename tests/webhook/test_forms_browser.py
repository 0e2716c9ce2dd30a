"""A person signs up on a hosted form in headless Chromium (issue 17): the real webhook
process takes the post into its inbox, a real Celery worker (with beat) subscribes it and
sends the confirmation mail to the outbox,
the link's GET page confirms nothing, its button does."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from core.forms.service import FieldSpec, FormInput, create_form
from core.infra.config import settings
from core.infra.db import session_scope
from core.models import Consent, Contact, ContactList, ListMembership
from tests.browser.conftest import page  # noqa: F401 - the Chromium fixture
from tests.helpers import actor_of, make_user, make_workspace, message_text, outbox_messages
from tests.processes import process_env, start_webhook, start_worker, wait_until

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


def test_sign_up_confirm_by_button_not_by_visiting(live_db, page, tmp_path):  # noqa: F811
    with session_scope() as session:
        ws = make_workspace(session, name="Acme", from_name="Acme News", from_email="news@acme.io")
        editor = actor_of(make_user(session, ws, role="editor"))
        news = ContactList(workspace_id=ws.id, name="Newsletter", visibility="public")
        session.add(news)
        session.flush()
        form_id = create_form(
            session,
            editor,
            FormInput(
                name="Get the Acme newsletter",
                list_ids=[news.id],
                fields=[FieldSpec("first_name", required=True), FieldSpec("company")],
                consent_text="I agree to receive the Acme newsletter. I can unsubscribe any time.",
            ),
        ).id
        list_id = news.id
    data = tmp_path / "data"
    env = process_env(data, live_db, SECRET_KEY=settings.secret_key, FORM_MIN_FILL_SECONDS="1")
    webhook, base = start_webhook(env, tmp_path / "webhook.log")
    # With beat: it drains the signup inbox the webhook answers from (core.forms.inbox).
    worker = start_worker(env, tmp_path / "worker.log", beat=True)
    try:
        page.set_viewport_size({"width": 1400, "height": 1000})
        page.goto(f"{base}/f/{form_id}")
        page.get_by_role("heading", name="Get the Acme newsletter").wait_for()
        _shot(page, tmp_path, "form-hosted")
        page.get_by_label("Email").fill("ada@example.com")
        page.get_by_label("First name").fill("Ada")
        page.wait_for_timeout(1200)  # a person takes longer than the minimum fill time
        page.get_by_role("button", name="Subscribe").click()
        page.get_by_role("heading", name="Check your inbox").wait_for()
        _shot(page, tmp_path, "form-check-inbox")

        outbox = data / "outbox"
        wait_until(lambda: len(outbox_messages(outbox)) == 1, 60, "the confirmation mail")
        [message] = outbox_messages(outbox)
        assert message["To"] == "ada@example.com"
        link = re.search(r"https?://\S+/c/\S+", message_text(message)).group(0)
        path = "/c/" + link.split("/c/", 1)[1]

        # A link scanner fetches the link; then the person opens it: neither confirms.
        page.request.get(f"{base}{path}")
        page.goto(f"{base}{path}")
        page.get_by_role("button", name="Confirm my subscription").wait_for()
        _shot(page, tmp_path, "form-confirm")
        with session_scope() as session:
            contact = session.scalar(select(Contact).where(Contact.email == "ada@example.com"))
            assert contact.status == "unconfirmed"
        page.get_by_role("button", name="Confirm my subscription").click()
        page.get_by_role("heading", name="You are subscribed").wait_for()
        _shot(page, tmp_path, "form-subscribed")
    finally:
        worker.stop()
        webhook.stop()
    with session_scope() as session:
        contact = session.scalar(select(Contact).where(Contact.email == "ada@example.com"))
        assert contact.status == "subscribed" and contact.first_name == "Ada"
        assert (
            session.scalar(
                select(ListMembership.list_id).where(ListMembership.contact_id == contact.id)
            )
            == list_id
        )
        actions = session.scalars(
            select(Consent.action).where(Consent.contact_id == contact.id).order_by(Consent.id)
        )
        assert list(actions) == ["request", "confirm"]
