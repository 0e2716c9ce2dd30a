"""Signup forms and confirmation links through the real FastAPI app (issue 17)."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from core.forms import inbox, mail, signup
from core.forms.service import HONEYPOT, STAMP, FieldSpec, FormInput, create_form
from core.infra.db import get_sessionmaker, session_scope
from core.models import Consent, Contact, ContactList, ListMembership, SignupInbox
from tests.helpers import actor_of, make_user, make_workspace, outbox_messages
from webhook.main import app

HOSTILE = '<script>alert("x")</script>'


@pytest.fixture
def form_id(live_db) -> str:
    with session_scope() as session:
        ws = make_workspace(session, name="Acme", from_name=f"Acme {HOSTILE}")
        editor = actor_of(make_user(session, ws, role="editor"))
        news = ContactList(workspace_id=ws.id, name="News", visibility="public")
        session.add(news)
        session.flush()
        form = create_form(
            session,
            editor,
            FormInput(
                name=f"Join {HOSTILE}",
                list_ids=[news.id],
                fields=[FieldSpec("first_name", required=True)],
                consent_text=f"I agree {HOSTILE}",
            ),
        )
        return form.id


def _data(form_id: str, **extra: str) -> dict[str, str]:
    data = {
        "email": "ada@example.com",
        "first_name": "Ada",
        HONEYPOT: "",
        STAMP: signup.fill_stamp(form_id, time.time() - 10),
    }
    data.update(extra)
    return data


def _drain() -> int:
    """What the worker's beat does a moment after the answer: subscribe the inbox."""
    return inbox.drain_signup_backlog(get_sessionmaker())


def _mails(enqueued: list) -> tuple[list[int], list[int]]:
    """The confirmation and welcome mails the drain queued (their consent row ids)."""
    confirmations: list[int] = []
    welcomes: list[int] = []
    for name, (c, w), _ in enqueued:
        assert name == inbox.MAILS_TASK
        confirmations += c
        welcomes += w
    return confirmations, welcomes


def test_the_hosted_form_is_escaped_labelled_and_carries_the_bot_traps(form_id):
    client = TestClient(app)
    page = client.get(f"/f/{form_id}")
    assert page.status_code == 200
    text = page.text
    assert HOSTILE not in text and "&lt;script&gt;" in text
    assert '<label for="f-email">Email' in text and 'id="f-email"' in text
    assert '<label for="f-first_name">First name' in text
    assert f'name="{HONEYPOT}"' in text and f'name="{STAMP}"' in text
    assert 'name="viewport"' in text and "<script" not in text
    assert page.headers["cache-control"].startswith("no-store")
    assert client.get("/f/unknown-form").status_code == 404


def test_a_post_gets_the_check_inbox_page_and_the_link_confirms_only_on_post(
    form_id, enqueued, outbox
):
    client = TestClient(app)
    answer = client.post(f"/f/{form_id}", data=_data(form_id))
    assert answer.status_code == 200
    assert "Check your inbox" in answer.text
    # Answered once it is in the inbox: nobody is subscribed and no mail queued yet.
    with session_scope() as session:
        [waiting] = session.scalars(select(SignupInbox))
        assert (waiting.email, waiting.fields, waiting.ip) == (
            "ada@example.com",
            {"first_name": "Ada"},
            "testclient",
        )
        assert waiting.consent_text == f"I agree {HOSTILE}"
        assert session.scalar(select(Contact)) is None
    assert enqueued == []
    assert _drain() == 1
    [request_id], [] = _mails(enqueued)
    with session_scope() as session:
        assert session.scalar(select(SignupInbox)) is None
    with session_scope() as session:
        assert mail.send_confirmation(session, request_id) == "sent"
        request = session.get(Consent, request_id)
        link = signup.confirm_url(request)
    [message] = outbox_messages(outbox)
    assert link in message.get_payload()[0].get_payload(decode=True).decode()
    path = link.removeprefix("http://track.example.com")

    for _ in range(3):  # a link scanner, then the person opening the mail
        page = client.get(path)
        assert page.status_code == 200
        assert "Confirm my subscription" in page.text and HOSTILE not in page.text
        assert page.headers["referrer-policy"] == "no-referrer"
    with session_scope() as session:
        contact = session.scalar(select(Contact).where(Contact.email == "ada@example.com"))
        assert contact.status == "unconfirmed"
    done = client.post(path)
    assert done.status_code == 200 and "You are subscribed" in done.text
    with session_scope() as session:
        contact = session.scalar(select(Contact).where(Contact.email == "ada@example.com"))
        assert contact.status == "subscribed"
        assert session.scalar(select(ListMembership).where(ListMembership.contact_id == contact.id))
        confirm = session.scalar(select(Consent).where(Consent.request_id == request_id))
        assert confirm.confirm_ip == "testclient"
    assert "You are subscribed" in client.get(path).text
    assert client.get(path[:-3] + "xyz").status_code == 404


def test_refused_posts_say_why(form_id, enqueued):
    client = TestClient(app)
    big = client.post(f"/f/{form_id}", data=_data(form_id, first_name="x" * 70_000))
    assert big.status_code == 413
    unknown = client.post(f"/f/{form_id}", data=_data(form_id, admin="1"))
    assert unknown.status_code == 400 and "admin" in unknown.text
    invalid = client.post(f"/f/{form_id}", data=_data(form_id, email=f"{HOSTILE}@x"))
    assert invalid.status_code == 422
    assert "not a valid email address" in invalid.text and HOSTILE not in invalid.text
    assert 'value="Ada"' in invalid.text  # the answers come back
    missing = client.post(f"/f/{form_id}", data=_data(form_id, first_name=""))
    assert missing.status_code == 422 and "First name is required" in missing.text
    as_json = client.post(f"/f/{form_id}", json=_data(form_id))
    assert as_json.status_code == 400
    assert _drain() == 0 and enqueued == []


def test_bots_get_the_same_page_and_nothing_happens(form_id, enqueued):
    client = TestClient(app)
    person = client.post(f"/f/{form_id}", data=_data(form_id, email="p@example.com"))
    honeypot = client.post(
        f"/f/{form_id}", data=_data(form_id, email="h@example.com", **{HONEYPOT: "x"})
    )
    fast = client.post(
        f"/f/{form_id}",
        data=_data(form_id, email="f@example.com", **{STAMP: signup.fill_stamp(form_id)}),
    )
    assert person.text == honeypot.text == fast.text
    assert _drain() == 1
    assert len(_mails(enqueued)[0]) == 1
    with session_scope() as session:
        assert set(session.scalars(select(Contact.email))) == {"p@example.com"}


def test_a_redirect_url_is_followed_after_the_post(live_db, enqueued):
    with session_scope() as session:
        ws = make_workspace(session)
        editor = actor_of(make_user(session, ws, role="editor"))
        news = ContactList(workspace_id=ws.id, name="News", visibility="public")
        session.add(news)
        session.flush()
        form_id = create_form(
            session,
            editor,
            FormInput(
                name="R",
                list_ids=[news.id],
                double_opt_in=False,
                redirect_url="https://acme.example/thanks",
            ),
        ).id
    client = TestClient(app)
    answer = client.post(
        f"/f/{form_id}",
        data={"email": "r@example.com", STAMP: signup.fill_stamp(form_id, time.time() - 5)},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "https://acme.example/thanks"


def test_too_many_posts_from_one_ip_get_a_429_page(form_id, enqueued, monkeypatch):
    from core.infra.config import settings

    monkeypatch.setattr(settings, "form_posts_per_ip_per_hour", 2)
    client = TestClient(app)
    codes = [
        client.post(f"/f/{form_id}", data=_data(form_id, email=f"p{i}@example.com")).status_code
        for i in range(3)
    ]
    assert codes == [200, 200, 429]
    assert _drain() == 2
    assert len(_mails(enqueued)[0]) == 2


def test_behind_a_trusted_proxy_the_forwarded_address_is_recorded_and_limited(
    form_id, enqueued, monkeypatch
):
    """TRUSTED_PROXIES: the signup, its consent row and the per-IP limit use the address
    the proxy saw; a forwarded header from anybody else changes nothing."""
    from core.infra.config import settings

    monkeypatch.setattr(settings, "form_posts_per_ip_per_hour", 1)
    client = TestClient(app)  # its peer address is "testclient", not an IP: not trusted
    spoofed = {"X-Forwarded-For": "198.51.100.1"}
    assert client.post(f"/f/{form_id}", data=_data(form_id), headers=spoofed).status_code == 200
    with session_scope() as session:
        assert session.scalar(select(SignupInbox.ip)) == "testclient"

    monkeypatch.setattr(settings, "trusted_proxies", "127.0.0.0/8")
    behind = TestClient(app, client=("127.0.0.1", 40000))
    posts = [
        behind.post(
            f"/f/{form_id}",
            data=_data(form_id, email=f"{name}@example.com"),
            headers={"X-Forwarded-For": f"1.1.1.1, {ip}"},
        ).status_code
        for name, ip in (("bea", "198.51.100.2"), ("cy", "198.51.100.3"), ("di", "198.51.100.2"))
    ]
    assert posts == [200, 200, 429]  # one post an hour per client address, not per proxy
    assert _drain() == 3
    with session_scope() as session:
        rows = session.execute(select(Contact.email, Consent.ip).join(Consent))
        ips = {email: ip for email, ip in rows}
    assert ips == {
        "ada@example.com": "testclient",
        "bea@example.com": "198.51.100.2",
        "cy@example.com": "198.51.100.3",
    }
