"""Open pixel, click redirect and unsubscribe through the real FastAPI app."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from core.infra import clock
from core.infra.db import session_scope
from core.infra.tokens import sign
from core.ingest.tracking import click_url, open_url, unsubscribe_url
from core.models import Contact, Event, Message, Suppression
from tests.webhook.conftest import make_ledger
from webhook.main import PIXEL, app

HUMAN = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko)"


def path(url: str) -> str:
    return url.removeprefix("http://track.example.com")


def altered(token: str) -> str:
    body, mac = token.split(".", 1)
    return f"{body}.{'A' if mac[0] != 'A' else 'B'}{mac[1:]}"


def count(session, **where) -> int:
    query = select(func.count()).select_from(Event)
    for key, value in where.items():
        query = query.where(getattr(Event, key) == value)
    return session.scalar(query)


def test_open_pixel(ledger):
    client = TestClient(app)
    message = ledger.messages[0]
    url = path(open_url(ledger.workspace.id, message.id))
    response = client.get(url, headers={"user-agent": HUMAN})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert response.content == PIXEL
    assert "no-store" in response.headers["cache-control"]
    client.get(url, headers={"user-agent": "Mozilla/5.0"})  # Apple Mail Privacy Protection
    client.get(url, headers={"user-agent": "Mozilla/5.0 (via ggpht.com GoogleImageProxy)"})

    token = url.removeprefix("/t/o/").removesuffix(".gif")
    assert client.get(f"/t/o/{altered(token)}.gif").status_code == 404
    assert client.get("/t/o/garbage.gif").status_code == 404
    other = make_other_workspace_message()
    # Signed correctly, but the message belongs to another workspace than the token says.
    foreign = sign("open", ledger.workspace.id, other)
    assert client.get(f"/t/o/{foreign}.gif").status_code == 404
    # A click token is not an open token.
    click_token = path(click_url(ledger.workspace.id, message.id, "https://a.example/")).split("/")[
        -1
    ]
    assert client.get(f"/t/o/{click_token}.gif").status_code == 404

    with session_scope() as session:
        opens = session.scalars(select(Event).where(Event.type == "open").order_by(Event.id)).all()
        assert [(e.message_id, e.source) for e in opens] == [(message.id, "own")] * 3
        assert [e.is_machine for e in opens] == [False, True, True]
        assert [e.data.get("machine_reason") for e in opens] == [
            None,
            "apple-mail-privacy",
            "gmail-image-proxy",
        ]
        assert opens[0].user_agent == HUMAN
        assert opens[0].contact_id == message.contact_id


def make_other_workspace_message() -> int:
    with session_scope() as session:
        return make_ledger(session, recipients=1, name="Other Co").messages[0].id


def test_open_seconds_after_sending_is_a_machine_open(ledger):
    message = ledger.messages[1]
    with session_scope() as session:
        session.get(Message, message.id).sent_at = clock.now() - timedelta(seconds=3)
    TestClient(app).get(
        path(open_url(ledger.workspace.id, message.id)), headers={"user-agent": HUMAN}
    )
    with session_scope() as session:
        event = session.scalar(select(Event))
        assert event.is_machine and event.data["machine_reason"] == "seconds-after-sending"


def test_click_redirects_only_to_the_signed_link(ledger):
    client = TestClient(app, follow_redirects=False)
    message = ledger.messages[0]
    link = "https://acme.example/spring?utm_source=mail"
    url = path(click_url(ledger.workspace.id, message.id, link))
    response = client.get(url, headers={"user-agent": HUMAN})
    assert response.status_code == 302
    assert response.headers["location"] == link

    token = url.removeprefix("/t/c/")
    # Open-redirect attempts: a query parameter is ignored, a re-signed or altered token is 404.
    assert client.get(f"{url}?url=https://evil.example/").headers["location"] == link
    assert client.get(f"/t/c/{altered(token)}").status_code == 404
    forged = sign("click", ledger.workspace.id, message.id, "https://evil.example/", key="guess")
    assert client.get(f"/t/c/{forged}").status_code == 404
    body = token.split(".")[0]
    import base64

    evil_body = (
        base64.urlsafe_b64encode(
            f"{ledger.workspace.id}\n{message.id}\nhttps://evil.example/".encode()
        )
        .rstrip(b"=")
        .decode()
    )
    assert body != evil_body
    assert client.get(f"/t/c/{evil_body}.{token.split('.')[1]}").status_code == 404
    foreign = sign("click", ledger.workspace.id, make_other_workspace_message(), link)
    assert client.get(f"/t/c/{foreign}").status_code == 404
    js = sign("click", ledger.workspace.id, message.id, "javascript:alert(1)")
    assert client.get(f"/t/c/{js}").status_code == 404

    with session_scope() as session:
        clicks = session.scalars(select(Event).where(Event.type == "click")).all()
        assert {(e.message_id, e.url) for e in clicks} == {(message.id, link)}
        assert all(e.url != "https://evil.example/" for e in clicks)


def test_unsubscribe_page_and_one_click(ledger):
    client = TestClient(app)
    message = ledger.messages[0]
    url = path(unsubscribe_url(ledger.workspace.id, message.contact_id, message.id))
    page = client.get(url)
    assert page.status_code == 200
    assert "Acme News" in page.text and message.email in page.text
    assert '<form method="post"' in page.text
    with session_scope() as session:  # showing the page changes nothing (link scanners)
        assert session.get(Contact, message.contact_id).status == "subscribed"

    response = client.post(
        url,
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert "unsubscribed" in response.text
    assert client.post(url, content=b"List-Unsubscribe=One-Click").status_code == 200  # again
    with session_scope() as session:
        assert session.get(Contact, message.contact_id).status == "unsubscribed"
        (suppression,) = session.scalars(select(Suppression)).all()
        assert (suppression.email, suppression.reason) == (message.email, "unsubscribe")
        (event,) = session.scalars(select(Event).where(Event.type == "unsubscribe")).all()
        assert (event.message_id, event.campaign_id, event.contact_id) == (
            message.id,
            ledger.campaign.id,
            message.contact_id,
        )
    assert "You are unsubscribed" in client.get(url).text


def test_unsubscribe_refuses_altered_and_foreign_tokens(ledger):
    client = TestClient(app)
    first, second, _ = ledger.messages
    token = path(unsubscribe_url(ledger.workspace.id, first.contact_id, first.id)).split("/")[-1]
    other_message = make_other_workspace_message()
    with session_scope() as session:
        other_contact = session.get(Message, other_message).contact_id
    bad = [
        altered(token),
        sign("unsub", ledger.workspace.id, other_contact, 0),  # contact of another workspace
        sign("unsub", ledger.workspace.id, first.contact_id, second.id),  # not their message
        sign("unsub", ledger.workspace.id, first.contact_id, 0, key="not-our-key-0123456789"),
        sign("open", ledger.workspace.id, first.id),
        "nonsense",
    ]
    for token in bad:
        assert client.get(f"/u/{token}").status_code == 404, token
        assert client.post(f"/u/{token}", content=b"List-Unsubscribe=One-Click").status_code == 404
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Suppression)) == 0
        assert count(session) == 0
        statuses = set(session.scalars(select(Contact.status)))
        assert statuses == {"subscribed"}
    # Without a message (a test send): still unsubscribes.
    plain = path(unsubscribe_url(ledger.workspace.id, second.contact_id))
    assert client.post(plain, content=b"List-Unsubscribe=One-Click").status_code == 200
    with session_scope() as session:
        assert session.get(Contact, second.contact_id).status == "unsubscribed"
        assert count(session, type="unsubscribe", message_id=None) == 1
