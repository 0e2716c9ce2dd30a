"""The webhook's inbox of SNS notifications: accepted on the request path, their events
made by the worker (`drain_sns_backlog`), a notification that keeps failing set aside."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from core.deliverability import guard
from core.infra import metrics
from core.infra.clock import as_utc, now
from core.infra.config import settings
from core.ingest.ses import _ledger_rows, _match, parse_ses_event
from core.ingest.store import NewEvent, _connection, _insert_ignore, store_events
from core.models import SnsMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SnsItem:
    """A verified SNS Notification to store (see core.ingest.sns.verify)."""

    message_id: str
    type: str
    topic_arn: str
    message: str  # the SNS Message: an SES event as JSON


def remember_sns_message(
    db: Session | Connection, message_id: str, type_: str, topic_arn: str
) -> bool:
    """Note an SNS MessageId as handled; False when it was seen before (a replay)."""
    row = {"message_id": message_id, "type": type_, "topic_arn": topic_arn, "received_at": now()}
    table = SnsMessage.__table__
    return bool(_insert_ignore(_connection(db), table, [row], ["message_id"], "message_id"))


MAX_SNS_ATTEMPTS = 5  # failed tries at a notification's events before a person looks


def accept_sns_notifications(db: Session | Connection, items: Sequence[SnsItem]) -> list[str]:
    """The webhook's request path: note each SNS MessageId once and keep the notification
    in the inbox (sns_message.body) until its events are made; in the caller's transaction.

    One outcome per item: "stored" or "replay" (MessageId seen before, or earlier in the
    batch). Once this commits, the notification is kept: `process_sns_backlog` turns it
    into events just after, in large batches, off the request path."""
    conn = _connection(db)
    at = now()
    rows: dict[str, dict[str, Any]] = {}
    for item in items:
        rows.setdefault(
            item.message_id,
            {
                "message_id": item.message_id,
                "type": item.type,
                "topic_arn": item.topic_arn,
                "received_at": at,
                "body": item.message,
            },
        )
    fresh = set(
        _insert_ignore(
            conn, SnsMessage.__table__, list(rows.values()), ["message_id"], "message_id"
        )
    )
    outcomes: list[str] = []
    for item in items:
        if item.message_id in fresh:
            fresh.discard(item.message_id)  # a repeat later in the batch is a replay
            outcomes.append("stored")
        else:
            outcomes.append("replay")
    return outcomes


_SNS = SnsMessage.__table__.c


# Waiting in the inbox, and not yet given up on.
_PENDING = (_SNS.body.is_not(None), _SNS.attempts < MAX_SNS_ATTEMPTS)


def process_sns_backlog(
    db: Session | Connection, limit: int = 500, only: Sequence[str] | None = None
) -> list[str]:
    """Make the events of up to `limit` notifications waiting in the inbox, oldest first,
    in the caller's transaction; returns their SNS MessageIds (`only`: just these).

    The rows taken are locked, and rows another transaction holds are skipped
    (PostgreSQL), so several workers share a backlog without waiting on each other. Each event is stored once (its dedupe key), so a notification made again after
    a failure stores nothing twice."""
    conn = _connection(db)
    query = select(_SNS.message_id, _SNS.body, _SNS.received_at).where(*_PENDING)
    if only is not None:
        query = query.where(_SNS.message_id.in_(list(only)))
    query = query.order_by(_SNS.received_at).limit(limit).with_for_update(skip_locked=True)
    pending = conn.execute(query).all()
    _, paused = _make_sns_events(
        conn, [(row.message_id, row.body, row.received_at) for row in pending]
    )
    guard.notify_later(db, paused)
    return [row.message_id for row in pending]


def pending_sns_messages(db: Session | Connection, limit: int = 500) -> list[str]:
    """The MessageIds waiting in the inbox, oldest first (without locking them)."""
    query = select(_SNS.message_id).where(*_PENDING).order_by(_SNS.received_at).limit(limit)
    return list(_connection(db).scalars(query))


def note_sns_failure(db: Session | Connection, message_id: str, error: str) -> None:
    """A notification whose events could not be made: counted, with the error; after
    MAX_SNS_ATTEMPTS it stays in the inbox for a person and is no longer tried."""
    _connection(db).execute(
        update(SnsMessage.__table__)
        .where(_SNS.message_id == message_id)
        .values(attempts=_SNS.attempts + 1, last_error=error[:2000])
    )


def drain_sns_backlog(sessions: sessionmaker[Session], batch: int | None = None) -> int:
    """Make the events of every notification waiting in the webhook's inbox, `batch` per
    transaction, until none is left; returns how many it took. The worker runs it
    (worker.tasks.make_sns_events) every SNS_DRAIN_SECONDS. It runs its own transactions,
    so it takes a session factory.

    A batch that fails is retried one notification at a time; one that fails alone is
    counted against it (`note_sns_failure`), so that it cannot hold up the rest."""
    batch = batch or settings.webhook_drain_batch
    total = 0
    while True:
        try:
            with sessions.begin() as session:
                taken = len(process_sns_backlog(session, batch))
        except Exception:
            log.exception("a batch of SNS notifications failed; retrying them one by one")
            taken = _drain_one_by_one(sessions, batch)
        total += taken
        if taken < batch:
            return total


def _drain_one_by_one(sessions: sessionmaker[Session], batch: int) -> int:
    with sessions.begin() as session:
        ids = pending_sns_messages(session, batch)
    for message_id in ids:
        try:
            with sessions.begin() as session:
                process_sns_backlog(session, 1, only=[message_id])
        except Exception as exc:
            log.exception("SNS notification %s failed", message_id)
            with sessions.begin() as session:
                note_sns_failure(session, message_id, f"{type(exc).__name__}: {exc}")
    return len(ids)


def store_sns_notifications(db: Session | Connection, items: Sequence[SnsItem]) -> list[str]:
    """Accept a batch and make its events at once, in the caller's transaction: what the
    webhook does in two steps, for callers that want the events now.

    One outcome per item: "stored", "replay" (MessageId seen before) or "ignored"
    (nothing in it matched the ledger; logged)."""
    conn = _connection(db)
    outcomes = accept_sns_notifications(conn, items)
    fresh = [item for item, outcome in zip(items, outcomes, strict=True) if outcome == "stored"]
    if not fresh:
        return outcomes
    at = now()
    matched, paused = _make_sns_events(conn, [(i.message_id, i.message, at) for i in fresh])
    guard.notify_later(db, paused)
    return [
        "ignored" if outcome == "stored" and not matched.get(item.message_id) else outcome
        for item, outcome in zip(items, outcomes, strict=True)
    ]


def _make_sns_events(
    conn: Connection, notifications: Sequence[tuple[str, str, datetime]]
) -> tuple[dict[str, int], list[int]]:
    """Store the events of (SNS MessageId, SES event JSON, received at) notifications in
    the inbox, apply their consequences, run the deliverability guard over the campaigns
    whose feedback just arrived, and mark the notifications done (body NULL); returns how
    many events each one matched to the ledger (one that matched none is logged) and the
    campaigns the guard paused."""
    if not notifications:
        return {}, []
    records_per_item = [
        (sns_id, parse_ses_event(body, as_utc(received)))
        for sns_id, body, received in notifications
    ]
    ledger = _ledger_rows(conn, [r for _, recs in records_per_item for r in recs])
    found: list[NewEvent] = []
    matched: dict[str, int] = {}
    for sns_id, recs in records_per_item:
        for r in recs:
            event = _match(conn, ledger, r)
            if event is not None:
                found.append(event)
                matched[sns_id] = matched.get(sns_id, 0) + 1
    new = store_events(conn, found)
    paused = guard.check_campaigns(
        conn,
        {e.message.campaign_id for e in new if e.message is not None and e.type in guard.FEEDBACK},
    )
    _log_events(found)
    at = now()
    for event in found:
        metrics.EVENTS.labels(event.type).inc()
        if event.type == "bounce":
            metrics.BOUNCES.labels(event.bounce_type or "soft").inc()
    for _, _, received in notifications:
        metrics.EVENT_LAG.observe(max(0.0, (at - as_utc(received)).total_seconds()))
    for sns_id, _ in records_per_item:
        if not matched.get(sns_id):
            log.warning("SNS message %s matched no ledger row; acknowledged", sns_id)
    conn.execute(
        update(SnsMessage.__table__)
        .where(_SNS.message_id.in_(bindparam("ids", expanding=True)))
        .values(body=None),
        {"ids": [sns_id for sns_id, _ in records_per_item]},
    )
    return matched, paused


# Events someone may be asked about (and that suppress an address) are logged at INFO; the
# many deliveries, opens and clicks at DEBUG. Each line names its message and campaign.
NOTABLE = frozenset({"bounce", "complaint", "reject", "rendering_failure"})


def _log_events(events: Sequence[NewEvent]) -> None:
    debug = log.isEnabledFor(logging.DEBUG)
    for event in events:
        if event.type not in NOTABLE and not debug:
            continue
        message = event.message
        log.log(
            logging.INFO if event.type in NOTABLE else logging.DEBUG,
            "SES %s%s for message %s (%s)",
            event.type,
            f" ({event.bounce_type})" if event.bounce_type else "",
            message.id if message else None,
            getattr(message, "provider_message_id", None) or event.dedupe_key,
            extra={
                "message_id": message.id if message else None,
                "campaign_id": message.campaign_id if message else None,
            },
        )


def inbox_backlog(db: Session | Connection) -> tuple[int, float | None]:
    """(notifications waiting, age in seconds of the oldest or None), for the metrics."""
    row = (
        _connection(db)
        .execute(select(func.count(), func.min(_SNS.received_at)).where(*_PENDING))
        .one()
    )
    oldest = (now() - as_utc(row[1])).total_seconds() if row[1] is not None else None
    return int(row[0]), oldest
