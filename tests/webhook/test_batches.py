"""A batch of notifications stored together (the webhook's group commit), on both backends."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from core.infra.db import get_sessionmaker, session_scope
from core.ingest import inbox
from core.models import Contact, Event, Message, SnsMessage, Suppression
from tests.webhook.conftest import make_ledger
from tests.webhook.snsutil import TOPIC, ses_event


def item(body: dict, message_id: str | None = None) -> inbox.SnsItem:
    return inbox.SnsItem(message_id or str(uuid.uuid4()), "Notification", TOPIC, json.dumps(body))


def count(session: Session, model: type, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


def test_a_batch_stores_each_notification_and_each_event_once(session: Session):
    ledger = make_ledger(session, recipients=3)
    m0, m1, m2 = ledger.messages
    delivery = item(ses_event("Delivery", m0.provider_message_id, [m0.email]))
    bounce_body = ses_event("Bounce", m1.provider_message_id, [m1.email])
    bounce = item(bounce_body)
    # The same SES event through a second subscription: another SNS MessageId.
    bounce_again = item(bounce_body)
    unknown = item(ses_event("Delivery", "0100-nobody-knows", ["x@example.net"]))
    complaint = item(ses_event("Complaint", m2.provider_message_id, [m2.email]))

    outcomes = inbox.store_sns_notifications(
        session, [delivery, delivery, bounce, bounce_again, unknown, complaint]
    )

    assert outcomes == ["stored", "replay", "stored", "stored", "ignored", "stored"]
    assert count(session, SnsMessage) == 5
    assert count(session, Event, Event.campaign_id == ledger.campaign.id) == 3
    assert count(session, Event, Event.message_id == m1.id, Event.type == "bounce") == 1
    suppressed = session.execute(
        select(Suppression.email, Suppression.reason).where(
            Suppression.workspace_id == ledger.workspace.id
        )
    ).all()
    assert sorted(suppressed) == sorted([(m1.email, "bounce"), (m2.email, "complaint")])
    statuses = dict(
        session.execute(
            select(Contact.id, Contact.status).where(
                Contact.id.in_([c.id for c in ledger.contacts])
            )
        ).all()
    )
    assert [statuses[c.id] for c in ledger.contacts] == ["subscribed", "bounced", "complained"]

    # SNS delivers again: each one a replay, nothing stored twice, consequences once.
    again = inbox.store_sns_notifications(session, [complaint, bounce, delivery])
    assert again == ["replay", "replay", "replay"]
    assert count(session, SnsMessage) == 5
    assert count(session, Event, Event.campaign_id == ledger.campaign.id) == 3
    assert count(session, Suppression, Suppression.workspace_id == ledger.workspace.id) == 2


def test_an_event_seen_under_a_replayed_message_id_is_not_stored_again(session: Session):
    ledger = make_ledger(session, recipients=1)
    (message,) = ledger.messages
    body = ses_event("Open", message.provider_message_id, [message.email])
    first = item(body)
    assert inbox.store_sns_notifications(session, [first]) == ["stored"]
    # A replay of the first and the same event under a new MessageId, in one batch.
    assert inbox.store_sns_notifications(session, [first, item(body)]) == ["replay", "stored"]
    assert count(session, Event, Event.message_id == message.id) == 1


def test_a_batch_on_a_core_connection(session: Session):
    """The webhook passes its kept connection, not a session."""
    ledger = make_ledger(session, recipients=2)
    m0, m1 = ledger.messages
    batch = [
        item(ses_event("Click", m0.provider_message_id, [m0.email], link="https://a.example/")),
        item(ses_event("Reject", m1.provider_message_id, [m1.email])),
    ]
    session.flush()
    assert inbox.store_sns_notifications(session.connection(), batch) == ["stored", "stored"]
    rows = session.execute(
        select(Event.type, Event.url, Event.data).where(Event.campaign_id == ledger.campaign.id)
    ).all()
    by_type = {type_: (url, data) for type_, url, data in rows}
    assert set(by_type) == {"click", "reject"}
    assert by_type["click"][1]["recipient"] == m0.email
    session.expire_all()
    assert session.get(Message, m1.id).status == "failed"


def test_a_replayed_message_id_stores_nothing_even_when_it_now_matches(session: Session):
    """A MessageId is handled once: its first delivery decides, even an "ignored" one."""
    ledger = make_ledger(session, recipients=1)
    (message,) = ledger.messages
    early = item(ses_event("Delivery", "0100-not-yet-recorded", [message.email]))
    assert inbox.store_sns_notifications(session, [early]) == ["ignored"]
    message.provider_message_id = "0100-not-yet-recorded"
    session.flush()
    assert inbox.store_sns_notifications(session, [early]) == ["replay"]
    assert count(session, Event, Event.message_id == message.id) == 0


def test_the_worker_makes_the_inbox_events_and_sets_aside_one_that_fails(live_db, monkeypatch):
    """What the webhook stored waits in the inbox until the worker drains it. A notification
    that fails does not hold up the others; it is counted, kept, and retried up to
    MAX_SNS_ATTEMPTS times."""
    with session_scope() as session:
        ledger = make_ledger(session, recipients=3)
        m0, m1, m2 = ledger.messages
        first = item(ses_event("Delivery", m0.provider_message_id, [m0.email]))
        bad = item(ses_event("Bounce", m1.provider_message_id, [m1.email]))
        last = item(ses_event("Delivery", m2.provider_message_id, [m2.email]))
        outcomes = inbox.accept_sns_notifications(session, [first, bad, last, first])
        assert outcomes == ["stored", "stored", "stored", "replay"]
    with session_scope() as session:
        assert count(session, Event) == 0
        waiting = {first.message_id, bad.message_id, last.message_id}
        assert set(inbox.pending_sns_messages(session)) == waiting

    make = inbox._make_sns_events

    def failing(conn, notifications):
        if any(sns_id == bad.message_id for sns_id, _, _ in notifications):
            raise RuntimeError("cannot read this one")
        return make(conn, notifications)

    monkeypatch.setattr(inbox, "_make_sns_events", failing)
    assert inbox.drain_sns_backlog(get_sessionmaker()) == 3
    with session_scope() as session:
        assert count(session, Event, Event.type == "delivered") == 2
        row = session.get(SnsMessage, bad.message_id)
        assert row.body is not None and row.attempts == 1
        assert "RuntimeError: cannot read this one" in row.last_error
        assert inbox.pending_sns_messages(session) == [bad.message_id]
    for _ in range(inbox.MAX_SNS_ATTEMPTS - 1):
        inbox.drain_sns_backlog(get_sessionmaker())
    with session_scope() as session:
        assert session.get(SnsMessage, bad.message_id).attempts == inbox.MAX_SNS_ATTEMPTS
        assert inbox.pending_sns_messages(session) == []  # left for a person
        assert session.get(Contact, m1.contact_id).status == "subscribed"

    # Fixed, and its attempts reset by hand: made like the others.
    monkeypatch.setattr(inbox, "_make_sns_events", make)
    with session_scope() as session:
        session.get(SnsMessage, bad.message_id).attempts = 0
    assert inbox.drain_sns_backlog(get_sessionmaker()) == 1
    with session_scope() as session:
        assert session.get(Contact, m1.contact_id).status == "bounced"
        assert session.get(SnsMessage, bad.message_id).body is None


def test_two_drains_share_the_backlog_without_waiting(live_db, backend):
    """Several workers drain at once on PostgreSQL: each skips the rows another holds."""
    if backend != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    with session_scope() as session:
        ledger = make_ledger(session, recipients=3)
        notes = [item(ses_event("Open", m.provider_message_id, [m.email])) for m in ledger.messages]
        inbox.accept_sns_notifications(session, notes)
    with session_scope() as holding:
        taken = inbox.process_sns_backlog(holding, limit=2)
        assert len(taken) == 2
        with session_scope() as other:
            # Without SKIP LOCKED this would wait for `holding`: fail fast instead.
            other.execute(text("SET LOCAL lock_timeout = '2s'"))
            rest = inbox.process_sns_backlog(other, limit=500)
        assert set(rest) | set(taken) == {n.message_id for n in notes}
    with session_scope() as session:
        assert count(session, Event, Event.type == "open") == 3
