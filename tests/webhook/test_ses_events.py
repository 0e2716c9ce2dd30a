"""SES events through the real FastAPI app: verified, matched to the ledger, stored once."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from core.infra.db import get_sessionmaker, session_scope
from core.ingest.inbox import drain_sns_backlog, pending_sns_messages
from core.ingest.store import counted
from core.models import Contact, Event, Message, SnsMessage, Suppression, Workspace
from tests.webhook.conftest import make_ledger
from tests.webhook.snsutil import SUBSCRIBE_URL, notification, ses_event, subscription
from webhook.main import app


def post(client: TestClient, message: dict, header: str | None = None):
    """POST to the webhook, then what the worker does next: make the stored events."""
    response = client.post(
        "/sns/ses",
        content=json.dumps(message),
        headers={
            "content-type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": header or message["Type"],
        },
    )
    drain_sns_backlog(get_sessionmaker())
    return response


def events_of(session, message_id: int) -> list[Event]:
    return list(session.scalars(select(Event).where(Event.message_id == message_id)))


# (SES name, form, our type, bounce type, contact status after, suppressed, message status)
CASES = [
    ("Send", "eventType", "sent", None, "subscribed", False, "sent"),
    ("Delivery", "eventType", "delivered", None, "subscribed", False, "sent"),
    ("Delivery", "notificationType", "delivered", None, "subscribed", False, "sent"),
    ("Bounce", "eventType", "bounce", "hard", "bounced", True, "sent"),
    ("Bounce", "notificationType", "bounce", "hard", "bounced", True, "sent"),
    ("Complaint", "eventType", "complaint", None, "complained", True, "sent"),
    ("Complaint", "notificationType", "complaint", None, "complained", True, "sent"),
    ("Reject", "eventType", "reject", None, "subscribed", False, "failed"),
    ("Open", "eventType", "open", None, "subscribed", False, "sent"),
    ("Click", "eventType", "click", None, "subscribed", False, "sent"),
    ("Rendering Failure", "eventType", "rendering_failure", None, "subscribed", False, "failed"),
    ("DeliveryDelay", "eventType", "delivery_delay", None, "subscribed", False, "sent"),
    ("Subscription", "eventType", "subscription", None, "unsubscribed", True, "sent"),
]


def test_each_ses_event_type_maps_to_the_ledger(fake_sns, live_db):
    with session_scope() as session:
        ledger = make_ledger(session, recipients=len(CASES) + 2)
    client = TestClient(app)
    for case, message in zip(CASES, ledger.messages, strict=False):
        kind, form, *_ = case
        body = ses_event(kind, message.provider_message_id, [message.email], form=form)
        response = post(client, notification(body, subject="Amazon SES Email Event Notification"))
        assert response.status_code == 200, (kind, response.text)
        assert response.json() == {"status": "stored"}

    # A soft bounce: recorded as soft, no suppression, contact stays subscribed.
    soft = ledger.messages[len(CASES)]
    body = ses_event("Bounce", soft.provider_message_id, [soft.email], bounce_type="Transient")
    assert post(client, notification(body)).status_code == 200

    with session_scope() as session:
        for case, message in zip(CASES, ledger.messages, strict=False):
            kind, form, type_, bounce, contact_status, suppressed, message_status = case
            (event,) = events_of(session, message.id)
            assert (event.type, event.bounce_type, event.source) == (type_, bounce, "ses"), kind
            assert event.campaign_id == ledger.campaign.id
            assert event.contact_id == message.contact_id
            assert session.get(Contact, message.contact_id).status == contact_status, kind
            assert session.get(Message, message.id).status == message_status, kind
            found = session.scalar(
                select(Suppression).where(
                    Suppression.workspace_id == ledger.workspace.id,
                    Suppression.email == message.email,
                )
            )
            assert (found is not None) == suppressed, kind
        (event,) = events_of(session, soft.id)
        assert (event.type, event.bounce_type) == ("bounce", "soft")
        assert session.get(Contact, soft.contact_id).status == "subscribed"
        click = session.scalar(select(Event).where(Event.type == "click"))
        assert click.url == "https://acme.example/offer"
        opened = session.scalar(select(Event).where(Event.type == "open"))
        assert "Thunderbird" in opened.user_agent and opened.is_machine is False
        reject = session.scalar(
            select(Message)
            .join(Event, Event.message_id == Message.id)
            .where(Event.type == "reject")
        )
        assert "Bad content" in reject.error
        complaint = session.scalar(select(Suppression).where(Suppression.reason == "complaint"))
        assert complaint.detail == "abuse"


def test_bounce_with_several_recipients(fake_sns, ledger):
    first, second, third = ledger.messages
    # One SES message to two of them (their rows share the provider id).
    with session_scope() as session:
        session.get(Message, second.id).provider_message_id = first.provider_message_id
    body = ses_event("Bounce", first.provider_message_id, [first.email, second.email.upper()])
    response = post(TestClient(app), notification(body))
    assert response.status_code == 200
    with session_scope() as session:
        bounced = session.scalars(select(Event).where(Event.type == "bounce")).all()
        assert sorted(e.message_id for e in bounced) == sorted([first.id, second.id])
        assert {e.bounce_type for e in bounced} == {"hard"}
        statuses = {c.id: session.get(Contact, c.id).status for c in ledger.contacts}
        assert statuses == {
            first.contact_id: "bounced",
            second.contact_id: "bounced",
            third.contact_id: "subscribed",
        }
        emails = set(session.scalars(select(Suppression.email)))
        assert emails == {first.email, second.email}


def test_replay_is_acknowledged_and_stored_once(fake_sns, ledger):
    client = TestClient(app)
    message = ledger.messages[0]
    body = ses_event("Bounce", message.provider_message_id, [message.email])
    signed = notification(body)
    assert post(client, signed).json() == {"status": "stored"}
    assert post(client, signed).json() == {"status": "replay"}
    # The same SES event re-published under a new SNS MessageId: stored once too.
    assert post(client, notification(body)).status_code == 200
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 1
        assert session.scalar(select(func.count()).select_from(Suppression)) == 1
        assert session.scalar(select(func.count()).select_from(SnsMessage)) == 2


def test_forged_and_malformed_requests_get_clear_4xx(fake_sns, ledger):
    client = TestClient(app)
    message = ledger.messages[0]
    body = ses_event("Complaint", message.provider_message_id, [message.email])
    forged = notification(body)
    forged["Message"] = forged["Message"].replace("abuse", "not-spam")
    response = post(client, forged)
    assert response.status_code == 403
    assert "signature" in response.json()["error"]
    assert post(client, notification(body, topic="arn:aws:sns:x:1:other")).status_code == 403
    assert post(client, notification(body), header="SubscriptionConfirmation").status_code == 400
    no_header = client.post("/sns/ses", content=json.dumps(notification(body)))
    assert no_header.status_code == 400
    assert (
        client.post("/sns/ses", content=b"{]", headers={"x-amz-sns-message-type": "x"}).status_code
        == 400
    )
    huge = client.post(
        "/sns/ses", content=b"x" * (600 * 1024), headers={"x-amz-sns-message-type": "x"}
    )
    assert huge.status_code == 413
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 0
        assert session.get(Contact, message.contact_id).status == "subscribed"


def test_unknown_messages_are_acknowledged(fake_sns, ledger, caplog):
    client = TestClient(app)
    unknown = ses_event("Delivery", "no-such-message", ["someone@example.org"])
    # Acknowledged and stored; making its events finds no ledger row, and says so.
    assert post(client, notification(unknown)).json() == {"status": "stored"}
    assert "matched no ledger row" in caplog.text
    assert post(client, notification("plain text, not SES")).json() == {"status": "stored"}
    # Matched by the tag the sender set when the provider id is not (yet) on the row.
    message = ledger.messages[1]
    tagged = ses_event(
        "Delivery",
        "id-not-recorded",
        [message.email],
        tags={"mw_message_id": [str(message.id)], "mw_workspace_id": [str(ledger.workspace.id)]},
    )
    assert post(client, notification(tagged)).json() == {"status": "stored"}
    wrong_ws = ses_event(
        "Delivery",
        "id-not-recorded-2",
        [message.email],
        tags={"mw_message_id": [str(message.id)], "mw_workspace_id": ["999999"]},
    )
    assert post(client, notification(wrong_ws)).json() == {"status": "stored"}
    # The tags the sender sets: message and campaign; a campaign that disagrees is no match.
    sender_tags = {"message_id": [str(message.id)], "campaign_id": [str(ledger.campaign.id + 1)]}
    other = ses_event("Open", "id-not-recorded-3", [message.email], tags=sender_tags)
    assert post(client, notification(other)).json() == {"status": "stored"}
    third = ledger.messages[2]
    sender_tags = {"message_id": [str(third.id)], "campaign_id": [str(ledger.campaign.id)]}
    matching = ses_event("Send", "id-not-recorded-4", [third.email], tags=sender_tags)
    assert post(client, notification(matching)).json() == {"status": "stored"}
    with session_scope() as session:
        stored = session.execute(select(Event.message_id, Event.type).order_by(Event.id)).all()
        assert [tuple(row) for row in stored] == [(message.id, "delivered"), (third.id, "sent")]
        # Each one was handled: nothing waits in the inbox.
        assert pending_sns_messages(session) == []


def test_subscription_confirmation_visits_subscribe_url_once(fake_sns, live_db):
    fake_sns.documents[SUBSCRIBE_URL] = b"<ConfirmSubscriptionResponse/>"
    client = TestClient(app)
    confirmation = subscription()
    assert post(client, confirmation).json() == {"status": "confirmed"}
    assert post(client, confirmation).json() == {"status": "replay"}
    assert fake_sns.visited.count(SUBSCRIBE_URL) == 1
    # SNS down: 5xx so that SNS tries again.
    del fake_sns.documents[SUBSCRIBE_URL]
    assert post(client, subscription()).status_code == 503
    unsubscribed = subscription("UnsubscribeConfirmation")
    assert post(client, unsubscribed).json() == {"status": "logged"}
    assert fake_sns.visited.count(SUBSCRIBE_URL) == 2  # the failed try; never for unsubscribe


@pytest.mark.parametrize("tracking_source", ["own", "ses"])
def test_opens_from_the_other_source_are_stored_but_not_counted(fake_sns, ledger, tracking_source):
    message = ledger.messages[0]
    with session_scope() as session:
        session.get(Workspace, ledger.workspace.id).tracking_source = tracking_source
    client = TestClient(app)
    body = ses_event("Open", message.provider_message_id, [message.email])
    assert post(client, notification(body)).status_code == 200
    from core.ingest.tracking import open_url

    pixel = open_url(ledger.workspace.id, message.id).split("/t/o/", 1)[1]
    assert client.get(f"/t/o/{pixel}").status_code == 200
    with session_scope() as session:
        stored = session.scalars(select(Event.source).where(Event.type == "open")).all()
        assert sorted(stored) == ["own", "ses"]
        kept = session.scalars(select(Event.source).where(Event.type == "open", counted())).all()
        assert kept == [tracking_source]
