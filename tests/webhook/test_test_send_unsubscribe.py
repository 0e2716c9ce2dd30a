"""The unsubscribe links of a test send (issue 16): the page and the one-click POST say
"this is a test message", change nothing, and only a token we signed opens them."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from core.content.templates import TemplateDraft, send_test
from core.infra.db import session_scope
from core.infra.tokens import sign
from core.ingest.tracking import unsubscribe_url, unsubscribe_url_of_test_send
from core.models import Contact, Event, Suppression
from tests.helpers import (
    actor_of,
    make_contact,
    make_user,
    make_workspace,
    message_text,
    outbox_messages,
)
from webhook.main import app

BODY = '<p>Hi {{ first_name }}, <a href="{{ unsubscribe_url }}">leave this list</a>.</p>'


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def test_a_test_sends_unsubscribe_links_change_nothing(live_db, outbox):
    with session_scope() as session:
        workspace = make_workspace(session, name="Acme News")
        actor = actor_of(make_user(session, workspace))
        ann = make_contact(session, workspace, email="ann@example.com", first_name="Ann")
        ann_id, ws_id = ann.id, workspace.id
    with session_scope() as session:
        # Rendered for a real contact, sent to a colleague: the links must not name Ann.
        send_test(session, actor, TemplateDraft("News", "Hi", BODY), "me@example.com", ann_id)
    [mail] = outbox_messages(outbox)
    header = mail["List-Unsubscribe"].strip("<>")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    [in_text] = re.findall(r"leave this list: (\S+?)\.?(?:\s|$)", message_text(mail))
    assert header == in_text == unsubscribe_url_of_test_send(ws_id)

    client = TestClient(app)
    page = client.get(_path(header))
    assert page.status_code == 200
    assert "This is a test message" in page.text and "Nothing was changed" in page.text
    assert "ann@example.com" not in page.text and "<form" not in page.text
    one_click = client.post(_path(header), content=b"List-Unsubscribe=One-Click")
    assert one_click.status_code == 200 and "This is a test message" in one_click.text

    with session_scope() as session:
        assert session.get(Contact, ann_id).status == "subscribed"
        assert session.scalar(select(func.count()).select_from(Event)) == 0
        assert session.scalar(select(func.count()).select_from(Suppression)) == 0


def test_only_our_signed_test_tokens_open_the_test_page(live_db):
    client = TestClient(app)
    token = _path(unsubscribe_url_of_test_send(3)).rsplit("/", 1)[1]
    body, mac = token.split(".", 1)
    forged = [
        f"{body}.{'A' if mac[0] != 'A' else 'B'}{mac[1:]}",  # altered signature
        sign("unsub-test", 3, key="not-our-key-0123456789"),  # someone else's key
        sign("unsub", 3, 0, 0),  # a real unsubscribe token is not a test token
        sign("unsub-test", 3, 4),  # malformed payload
        "garbage",
    ]
    for bad in forged:
        assert client.get(f"/u/test/{bad}").status_code == 404, bad
        assert client.post(f"/u/test/{bad}", content=b"List-Unsubscribe=One-Click").status_code == (
            404
        )
    # ... and a test token opens no real unsubscribe page either.
    assert client.get(f"/u/{token}").status_code == 404
    assert client.post(f"/u/{token}", content=b"List-Unsubscribe=One-Click").status_code == 404
    assert client.get(_path(unsubscribe_url(3, 0))).status_code == 404  # as before: no contact


def test_a_campaign_test_send_for_a_real_contact_cannot_unsubscribe_them(live_db, outbox):
    """The campaign wizard's test send, rendered for a chosen contact, carries test links
    too: before, its body linked to that contact's real unsubscribe."""
    from core.sending import pipeline as sending
    from tests.sending.builders import make_campaign, make_setup

    with session_scope() as session:
        setup = make_setup(session, contacts=1)
        campaign_id = make_campaign(session, setup)
        contact_id = session.scalars(
            select(Contact.id).where(Contact.workspace_id == setup.workspace_id)
        ).one()
    with session_scope() as session:
        sending.send_test(session, setup.actor, campaign_id, "me@example.com", contact_id)
    [mail] = outbox_messages(outbox)
    expected = unsubscribe_url_of_test_send(setup.workspace_id)
    assert mail["List-Unsubscribe"] == f"<{expected}>"
    assert f"Unsubscribe: {expected}" in message_text(mail)  # the footer's link
    client = TestClient(app)
    assert "This is a test message" in client.get(_path(expected)).text
    assert client.post(_path(expected), content=b"List-Unsubscribe=One-Click").status_code == 200
    with session_scope() as session:
        assert session.get(Contact, contact_id).status == "subscribed"
        assert session.scalar(select(func.count()).select_from(Event)) == 0
