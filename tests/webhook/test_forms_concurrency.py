"""The per-address cap on confirmation mails holds under concurrent posts answered by
several webhook processes (issue 17): real uvicorn with two worker processes, then
several drains of the signup inbox at once, each taking a few signups per transaction."""

from __future__ import annotations

import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from core.forms import inbox, signup, throttle
from core.forms.service import STAMP, FormInput, create_form
from core.infra.config import settings
from core.infra.db import get_sessionmaker, session_scope
from core.models import Consent, Contact, ContactList, FormThrottle, SignupInbox
from tests.helpers import actor_of, make_user, make_workspace
from tests.processes import process_env, start_webhook

pytestmark = [pytest.mark.slow]


def _post(url: str, data: dict[str, str]) -> tuple[int, str]:
    body = urllib.parse.urlencode(data).encode()
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, response.read().decode()


def test_three_confirmation_mails_a_day_however_many_posts_arrive_together(live_db, tmp_path):
    with session_scope() as session:
        ws = make_workspace(session)
        editor = actor_of(make_user(session, ws, role="editor"))
        news = ContactList(workspace_id=ws.id, name="News", visibility="public")
        session.add(news)
        session.flush()
        form_id = create_form(session, editor, FormInput(name="F", list_ids=[news.id])).id
    env = process_env(
        tmp_path, live_db, SECRET_KEY=settings.secret_key, FORM_POSTS_PER_IP_PER_HOUR="100"
    )
    proc, base = start_webhook(env, tmp_path / "webhook.log", workers=2)
    posts = 24
    try:
        stamp = signup.fill_stamp(form_id, time.time() - 10)
        data = {"email": "victim@example.com", STAMP: stamp}
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda _: _post(f"{base}/f/{form_id}", data), range(posts)))
    finally:
        proc.stop()
    assert {status for status, _ in answers} == {200}
    assert len({text for _, text in answers}) == 1  # the same page for every post
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(SignupInbox)) == posts
    # Three drains at once, as several worker processes would run them.
    with ThreadPoolExecutor(3) as pool:
        drained = list(
            pool.map(lambda _: inbox.drain_signup_backlog(get_sessionmaker(), batch=2), range(3))
        )
    assert sum(drained) == posts
    with session_scope() as session:
        contacts = session.scalars(select(Contact).where(Contact.email == "victim@example.com"))
        [contact] = list(contacts)
        assert contact.status == "unconfirmed"
        requests = session.scalar(
            select(func.count())
            .select_from(Consent)
            .where(Consent.contact_id == contact.id, Consent.action == "request")
        )
        booked = session.scalar(
            select(func.count())
            .select_from(FormThrottle)
            .where(FormThrottle.key == throttle.address_key("victim@example.com"))
        )
    assert (requests, booked) == (3, 3)
