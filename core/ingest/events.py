"""Events: what happened to each message after it left, stored once, with its consequences.

The contract (for analytics, segments and A/B):

- `Event` is the source of truth for activity. One row per thing that happened to one
  recipient of one message: `type` is one of models.EVENT_TYPES (sent, delivered, open,
  click, bounce, complaint, unsubscribe, reject, delivery_delay, rendering_failure,
  subscription). `workspace_id` is always set; `message_id`, `campaign_id` and
  `contact_id` are set whenever the ledger row is known (always for SES events and our
  own pixel and links; unsubscribes from a test send have no message).
- `occurred_at` is when it happened (SES's timestamp, or our request time), not when we
  stored it (`created_at`).
- `source` is "ses" (SES through SNS) or "own" (our pixel, redirect and unsubscribe).
  Opens and clicks may arrive from both when SES tracking is on too: they count in
  reports only when `source` equals the workspace's `tracking_source` ("own" by
  default). Use `counted()` in queries; every other type always counts.
- `bounce_type` is "hard" (SES Permanent) or "soft" (Transient, Undetermined) for bounces.
- `url` is the link for clicks. `user_agent` and `is_machine` are set for opens (and
  clicks): `is_machine` marks known prefetchers (Apple Mail Privacy Protection, the
  Gmail and Yahoo image proxies, security scanners) and opens within
  MACHINE_OPEN_SECONDS of sending; `data["machine_reason"]` says which. Count human
  opens with `is_machine = false`.
- `data` keeps the provider's detail (bounce diagnostic, complaint feedback type, SES
  message id, recipient, IP address).
- `dedupe_key` is unique: a replayed notification or a double-loaded pixel in the same
  second is stored once. Rows are never updated after insert.

Consequences, applied once per new event: a hard bounce suppresses the address
(`Suppression.reason = "bounce"`) and marks the contact `bounced`; a complaint
suppresses (`"complaint"`) and marks it `complained`; an unsubscribe suppresses
(`"unsubscribe"`) and marks it `unsubscribed`. A contact's status only moves towards the
stronger one (subscribed < unsubscribed < bounced < complained). A send, delivery, open
or click of a message still `sending` or `uncertain` settles it as `sent`; a reject or
rendering failure marks it `failed` with the reason.

SES messages are matched to the ledger by `mail.messageId` (Message.provider_message_id)
and, failing that, by the message tags the sender sets (`message_id`, checked against
`campaign_id` and, if present, the workspace: see TAG_MESSAGE); an unknown message is
logged and acknowledged.

SES events arrive in two steps. The webhook's request path only stores each verified SNS
notification in the inbox (`accept_sns_notifications`: sns_message with its body, which
also makes a replayed MessageId a no-op). The worker then makes the events of what waits
there, hundreds per transaction (`drain_sns_backlog`), where a ledger look-up and an
event's indexes cost a fraction of what they cost per request.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    Table,
    bindparam,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from core.infra.clock import as_utc, now
from core.infra.config import settings
from core.infra.errors import NotFound
from core.infra.permissions import Actor
from core.models import Contact, Event, Message, SnsMessage, Suppression, Workspace
from core.models.statuses import MessageStatus

log = logging.getLogger(__name__)

# Message tags the sender may set (SES EmailTags), by what they carry.
TAG_MESSAGE = ("mw_message_id", "message_id", "mw_message")
TAG_WORKSPACE = ("mw_workspace_id", "workspace_id", "mw_workspace")
TAG_CAMPAIGN = ("campaign_id", "mw_campaign_id")

MACHINE_OPEN_SECONDS = 10
# Substrings of user agents that fetch images without a person looking.
MACHINE_AGENTS = (
    ("GoogleImageProxy", "gmail-image-proxy"),
    ("YahooMailProxy", "yahoo-image-proxy"),
    ("Barracuda", "security-scanner"),
    ("Mimecast", "security-scanner"),
    ("Proofpoint", "security-scanner"),
)
# Apple Mail Privacy Protection fetches through Apple's proxy with this bare agent.
APPLE_MPP_AGENT = "Mozilla/5.0"

STATUS_RANK = {"subscribed": 0, "unsubscribed": 1, "bounced": 2, "complained": 3}
SUPPRESSING = {"bounce": ("bounced", "bounce"), "complaint": ("complained", "complaint")}
SETTLES_SENT = {"sent", "delivered", "open", "click"}
FAILS_MESSAGE = {"reject", "rendering_failure"}

# SES event names (event publishing `eventType` and identity `notificationType`).
SES_TYPES = {
    "Send": "sent",
    "Delivery": "delivered",
    "Bounce": "bounce",
    "Complaint": "complaint",
    "Reject": "reject",
    "Open": "open",
    "Click": "click",
    "Rendering Failure": "rendering_failure",
    "RenderingFailure": "rendering_failure",
    "DeliveryDelay": "delivery_delay",
    "Subscription": "subscription",
}


def counted() -> ColumnElement[bool]:
    """Events that count in reports: opens and clicks only from the workspace's source."""
    chosen = (
        select(Workspace.tracking_source)
        .where(Workspace.id == Event.workspace_id)
        .scalar_subquery()
    )
    return or_(Event.type.not_in(("open", "click")), Event.source == chosen)


# ---------------------------------------------------------------- helpers


def _connection(db: Session | Connection) -> Connection:
    """The connection of the caller's transaction; a session's pending ORM changes first,
    since the statements here go to the connection directly."""
    if isinstance(db, Session):
        db.flush()
        return db.connection()
    return db


def _insert(conn: Connection, table: Table):
    dialect = conn.dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert(table)


def _is_pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"


def _insert_ignore(
    conn: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    conflict: list[str],
    returning: str | None = None,
) -> list[Any]:
    """INSERT ... ON CONFLICT DO NOTHING for many rows at once; the `returning` column of
    the rows that went in. One cached statement run as executemany ("insertmanyvalues"):
    building a literal multi-row VALUES clause costs milliseconds per row to compile."""
    if not rows:
        return []
    if _is_pg(conn):
        return _pg_unnest_insert(conn, table, rows, conflict, returning)
    stmt = _insert(conn, table).on_conflict_do_nothing(index_elements=conflict)
    if returning is None:
        conn.execute(stmt, rows)
        return []
    result = conn.execute(stmt.returning(table.c[returning]), rows)
    return list(result.scalars())


@dataclass(frozen=True)
class _Unnest:
    """`unnest(arrays) AS alias(columns)` over some columns of a table (PostgreSQL)."""

    table: Table
    columns: tuple[str, ...]
    alias: str
    source: str  # the FROM item
    selects: str  # the table's columns in order, JSON ones cast back to jsonb

    @classmethod
    def of(
        cls, conn: Connection, table: Table, columns: Sequence[str], alias: str = "x"
    ) -> _Unnest:
        arrays = []
        selects = []
        for name in columns:
            column = table.c[name]
            # Binary parameters (%b): psycopg's text format escapes every array element
            # with a regular expression, a large share of the client's cost per event.
            if isinstance(column.type, JSON):
                arrays.append(f"%({alias}_{name})b::text[]")
                selects.append(f"{alias}.{name}::jsonb")
            else:
                sql_type = column.type.compile(dialect=conn.dialect)
                arrays.append(f"%({alias}_{name})b::{sql_type}[]")
                selects.append(f"{alias}.{name}")
        source = f"unnest({', '.join(arrays)}) AS {alias}({', '.join(columns)})"
        return cls(table, tuple(columns), alias, source, ", ".join(selects))

    def params(self, rows: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
        params: dict[str, list[Any]] = {}
        for name in self.columns:
            values = [row[name] for row in rows]
            column = self.table.c.get(name)
            if column is not None and isinstance(column.type, JSON):
                values = [json.dumps(v) for v in values]
            params[f"{self.alias}_{name}"] = values
        return params


_UNNEST_SQL: dict[
    tuple[str, tuple[str, ...], tuple[str, ...], str | None], tuple[str, _Unnest]
] = {}


def _pg_unnest_insert(
    conn: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    conflict: list[str],
    returning: str | None,
) -> list[Any]:
    """PostgreSQL: one INSERT ... SELECT FROM unnest(arrays) whatever the number of rows.

    Its text never changes, so psycopg prepares it once and the server plans it once;
    a multi-row VALUES list is a new statement for every batch size."""
    columns = tuple(rows[0])
    key = (table.name, columns, tuple(conflict), returning)
    cached = _UNNEST_SQL.get(key)
    if cached is None:
        unnest = _Unnest.of(conn, table, columns)
        sql = (
            f"INSERT INTO {table.name} ({', '.join(columns)}) "
            f"SELECT {unnest.selects} FROM {unnest.source} "
            f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
            + (f" RETURNING {returning}" if returning else "")
        )
        cached = _UNNEST_SQL[key] = (sql, unnest)
    sql, unnest = cached
    result = conn.exec_driver_sql(sql, unnest.params(rows))
    return list(result.scalars()) if returning else []


def _key(*parts: Any) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:48]


def _time(text: Any, default: datetime) -> datetime:
    if not text:
        return default
    try:
        value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return default
    return as_utc(value)


def classify_open(
    user_agent: str | None, sent_at: datetime | None, at: datetime
) -> tuple[bool, str | None]:
    """(is_machine, reason) for an open or click seen at `at`."""
    agent = (user_agent or "").strip()
    if agent == APPLE_MPP_AGENT:
        return True, "apple-mail-privacy"
    for needle, reason in MACHINE_AGENTS:
        if needle.lower() in agent.lower():
            return True, reason
    sent_at = as_utc(sent_at)
    if sent_at is not None and at - sent_at < timedelta(seconds=MACHINE_OPEN_SECONDS):
        return True, "seconds-after-sending"
    return False, None


@dataclass
class NewEvent:
    """An event to store; `message` is the ledger row when known."""

    workspace_id: int
    type: str
    dedupe_key: str
    occurred_at: datetime
    source: str
    message: Message | LedgerRow | None = None
    contact_id: int | None = None
    email: str | None = None  # the address the consequences apply to
    url: str | None = None
    bounce_type: str | None = None
    user_agent: str | None = None
    is_machine: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    def row(self) -> dict[str, Any]:
        return {
            "workspace_id": self.workspace_id,
            "campaign_id": self.message.campaign_id if self.message else None,
            "message_id": self.message.id if self.message else None,
            "contact_id": self.contact_id,
            "type": self.type,
            "occurred_at": self.occurred_at,
            "source": self.source,
            "url": self.url,
            "bounce_type": self.bounce_type,
            "user_agent": self.user_agent,
            "is_machine": self.is_machine,
            "data": self.data,
            "dedupe_key": self.dedupe_key,
            "created_at": now(),
        }


def store_events(db: Session | Connection, events: Sequence[NewEvent]) -> list[NewEvent]:
    """Insert `events` once each (by dedupe key) and apply the consequences of the new ones.

    Returns the events that were new. All in the caller's transaction."""
    unique: dict[str, NewEvent] = {}
    for item in events:
        unique.setdefault(item.dedupe_key, item)
    if not unique:
        return []
    conn = _connection(db)
    items = list(unique.values())
    inserted = set(
        _insert_ignore(
            conn, Event.__table__, [e.row() for e in items], ["dedupe_key"], "dedupe_key"
        )
    )
    new = [e for e in items if e.dedupe_key in inserted]
    _apply_consequences(conn, new)
    return new


def _apply_consequences(conn: Connection, events: list[NewEvent]) -> None:
    at = now()
    # Contacts: the strongest new status per contact.
    targets: dict[int, str] = {}
    suppress: dict[tuple[int, str], tuple[str, str]] = {}
    settled: dict[int, datetime] = {}
    failed: dict[int, str] = {}
    for e in events:
        status: str | None = None
        reason = ""  # set together with status
        if e.type == "bounce" and e.bounce_type == "hard":
            status, reason = SUPPRESSING["bounce"]
        elif e.type == "complaint":
            status, reason = SUPPRESSING["complaint"]
        elif e.type == "unsubscribe" or (
            e.type == "subscription" and e.data.get("unsubscribe_all")
        ):
            status, reason = "unsubscribed", "unsubscribe"
        if status is None:
            pass
        else:
            if e.contact_id is not None and STATUS_RANK[status] > STATUS_RANK.get(
                targets.get(e.contact_id, "subscribed"), 0
            ):
                targets[e.contact_id] = status
            if e.email:
                detail = str(e.data.get("diagnostic") or e.data.get("feedback_type") or "")
                suppress.setdefault((e.workspace_id, e.email.lower()), (reason, detail[:500]))
        message = e.message
        if message is not None:
            if e.type in SETTLES_SENT and message.status in (
                MessageStatus.SENDING,
                MessageStatus.UNCERTAIN,
            ):
                settled.setdefault(message.id, e.occurred_at)
            elif e.type in FAILS_MESSAGE and message.status != MessageStatus.FAILED:
                failed.setdefault(message.id, e.error or e.type)
    # Messages: conditional updates, so a concurrent sender's final word is never undone.
    # Core statements on the connection: the ORM's bulk-update bookkeeping costs more
    # than the update itself here.
    messages, contacts = Message.__table__.c, Contact.__table__.c
    for message_id, sent_at in settled.items():
        conn.execute(
            update(Message.__table__)
            .where(
                messages.id == message_id,
                messages.status.in_((MessageStatus.SENDING, MessageStatus.UNCERTAIN)),
            )
            .values(
                status=MessageStatus.SENT,
                sent_at=func.coalesce(messages.sent_at, sent_at),
                updated_at=at,
            )
        )
    for message_id, error in failed.items():
        conn.execute(
            update(Message.__table__)
            .where(messages.id == message_id, messages.status != MessageStatus.FAILED)
            .values(status=MessageStatus.FAILED, error=error, updated_at=at)
        )
    by_status: dict[str, list[int]] = {}
    for contact_id, status in targets.items():
        by_status.setdefault(status, []).append(contact_id)
    for status, ids in by_status.items():
        weaker = [s for s, rank in STATUS_RANK.items() if rank < STATUS_RANK[status]]
        conn.execute(
            update(Contact.__table__)
            .where(contacts.id.in_(ids), contacts.status.in_(weaker))
            .values(status=status, updated_at=at)
        )
    if suppress:
        rows = [
            {
                "workspace_id": ws,
                "email": email,
                "reason": reason,
                "detail": detail,
                "created_at": at,
            }
            for (ws, email), (reason, detail) in suppress.items()
        ]
        _insert_ignore(conn, Suppression.__table__, rows, ["workspace_id", "email"])


# ---------------------------------------------------------------- SES through SNS


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


@dataclass
class SesRecord:
    """One SES event for one recipient, before it is matched to the ledger."""

    type: str
    provider_id: str
    recipient: str
    occurred_at: datetime
    dedupe_key: str
    tags: dict[str, list[str]]
    bounce_type: str | None = None
    url: str | None = None
    user_agent: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def parse_ses_event(text: str, received: datetime | None = None) -> list[SesRecord]:
    """The per-recipient records of one SES event (event publishing or notification form).

    An unknown or unreadable event gives no records (it is logged)."""
    try:
        body = json.loads(text)
    except ValueError:
        log.warning("SNS message is not JSON; ignored")
        return []
    if not isinstance(body, dict):
        return []
    name = body.get("eventType") or body.get("notificationType")
    kind = SES_TYPES.get(str(name))
    mail = body.get("mail") or {}
    provider_id = mail.get("messageId")
    if kind is None or not isinstance(mail, dict) or not provider_id:
        log.info("SES event %r without a known type or message id; ignored", name)
        return []
    received = received or now()
    tags = mail.get("tags") or {}
    destination = [str(a) for a in mail.get("destination") or []]

    def rec(recipient: str, at: Any, discriminator: Any, **extra: Any) -> SesRecord:
        recipient = recipient.strip().lower()
        data = {"ses_message_id": provider_id, "recipient": recipient, **extra.pop("data", {})}
        return SesRecord(
            type=kind,
            provider_id=provider_id,
            recipient=recipient,
            occurred_at=_time(at, received),
            # SES message ids start with a time stamp: keys led by them land near each
            # other in the unique index, so a batch dirties few index pages.
            dedupe_key=f"ses:{provider_id[:100]}:{kind}:{_key(recipient, discriminator)[:32]}",
            tags=tags if isinstance(tags, dict) else {},
            data=data,
            **extra,
        )

    records: list[SesRecord] = []
    if kind == "sent":
        at = mail.get("timestamp")
        records = [rec(r, at, "") for r in destination]
    elif kind == "delivered":
        d = body.get("delivery") or {}
        at = d.get("timestamp")
        smtp = {"smtp_response": d.get("smtpResponse", "")}
        records = [rec(r, at, "", data=smtp) for r in d.get("recipients") or destination]
    elif kind == "bounce":
        b = body.get("bounce") or {}
        hard = b.get("bounceType") == "Permanent"
        for r in b.get("bouncedRecipients") or []:
            records.append(
                rec(
                    r.get("emailAddress", ""),
                    b.get("timestamp"),
                    b.get("feedbackId", b.get("timestamp")),
                    bounce_type="hard" if hard else "soft",
                    data={
                        "bounce_type": b.get("bounceType"),
                        "bounce_subtype": b.get("bounceSubType"),
                        "status": r.get("status"),
                        "diagnostic": r.get("diagnosticCode", ""),
                    },
                )
            )
    elif kind == "complaint":
        c = body.get("complaint") or {}
        for r in c.get("complainedRecipients") or []:
            records.append(
                rec(
                    r.get("emailAddress", ""),
                    c.get("timestamp"),
                    c.get("feedbackId", c.get("timestamp")),
                    data={
                        "feedback_type": c.get("complaintFeedbackType", ""),
                        "subtype": c.get("complaintSubType"),
                    },
                )
            )
    elif kind == "reject":
        reason = (body.get("reject") or {}).get("reason", "rejected")
        records = [
            rec(r, mail.get("timestamp"), "", error=f"SES rejected it: {reason}")
            for r in destination
        ]
    elif kind == "rendering_failure":
        f = body.get("failure") or {}
        reason = f.get("errorMessage", "rendering failure")
        records = [
            rec(r, mail.get("timestamp"), "", error=f"SES could not render it: {reason}")
            for r in destination
        ]
    elif kind in ("open", "click"):
        o = body.get(kind) or {}
        link = o.get("link") if kind == "click" else None
        records = [
            rec(
                r,
                o.get("timestamp"),
                (o.get("timestamp"), link),
                url=link,
                user_agent=o.get("userAgent"),
                data={"ip": o.get("ipAddress")},
            )
            for r in destination
        ]
    elif kind == "delivery_delay":
        d = body.get("deliveryDelay") or {}
        for r in d.get("delayedRecipients") or []:
            records.append(
                rec(
                    r.get("emailAddress", ""),
                    d.get("timestamp"),
                    d.get("timestamp"),
                    data={"delay_type": d.get("delayType"), "diagnostic": r.get("diagnosticCode")},
                )
            )
    elif kind == "subscription":
        s = body.get("subscription") or {}
        prefs = s.get("newTopicPreferences") or {}
        records = [
            rec(
                r,
                s.get("timestamp"),
                s.get("timestamp"),
                data={
                    "contact_list": s.get("contactList"),
                    "unsubscribe_all": bool(prefs.get("unsubscribeAll")),
                    "topics": prefs.get("topicSubscriptionStatus"),
                },
            )
            for r in destination
        ]
    return [r for r in records if r.recipient]


def _tag(tags: dict[str, list[str]], names: Iterable[str]) -> int | None:
    for name in names:
        # SES sends a list per tag; a bare string is read as well.
        value: list[str] | str | None = tags.get(name)
        if isinstance(value, list):
            value = value[0] if value else None
        if value is None:
            continue
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    return None


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
    _make_sns_events(conn, [(row.message_id, row.body, row.received_at) for row in pending])
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
    matched = _make_sns_events(conn, [(i.message_id, i.message, at) for i in fresh])
    return [
        "ignored" if outcome == "stored" and not matched.get(item.message_id) else outcome
        for item, outcome in zip(items, outcomes, strict=True)
    ]


def _make_sns_events(
    conn: Connection, notifications: Sequence[tuple[str, str, datetime]]
) -> dict[str, int]:
    """Store the events of (SNS MessageId, SES event JSON, received at) notifications in
    the inbox, apply their consequences and mark the notifications done (body NULL);
    returns how many events each one matched to the ledger (one that matched none is
    logged)."""
    if not notifications:
        return {}
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
    store_events(conn, found)
    for sns_id, _ in records_per_item:
        if not matched.get(sns_id):
            log.warning("SNS message %s matched no ledger row; acknowledged", sns_id)
    conn.execute(
        update(SnsMessage.__table__)
        .where(_SNS.message_id.in_(bindparam("ids", expanding=True)))
        .values(body=None),
        {"ids": [sns_id for sns_id, _ in records_per_item]},
    )
    return matched


@dataclass(frozen=True)
class LedgerRow:
    """The columns of a Message row that events need (lighter than an ORM object)."""

    id: int
    workspace_id: int
    campaign_id: int
    contact_id: int
    email: str
    status: str
    sent_at: datetime | None
    provider_message_id: str | None


_MESSAGE = Message.__table__.c
LEDGER_COLUMNS = [_MESSAGE[name] for name in LedgerRow.__dataclass_fields__]
# Built once with an expanding parameter: `in_(list)` would coerce every value per call.
LEDGER_BY_PROVIDER = select(*LEDGER_COLUMNS).where(
    _MESSAGE.provider_message_id.in_(bindparam("ids", expanding=True))
)
LEDGER_BY_ID = select(*LEDGER_COLUMNS).where(_MESSAGE.id.in_(bindparam("ids", expanding=True)))
# PostgreSQL: `= ANY(array)` keeps one statement text for any number of ids, and as
# driver SQL with a binary array it skips the per-element bind processing of ARRAY(String).
PG_LEDGER_BY_PROVIDER = (
    f"SELECT {', '.join(LedgerRow.__dataclass_fields__)} FROM message "
    "WHERE provider_message_id = ANY(%(ids)b::varchar[])"
)


@dataclass
class _Ledger:
    by_provider: dict[str, list[LedgerRow]]
    by_id: dict[int, LedgerRow]


def _ledger_rows(conn: Connection, records: list[SesRecord]) -> _Ledger:
    ledger = _Ledger({}, {})
    provider_ids = sorted({r.provider_id for r in records})
    for start in range(0, len(provider_ids), 500):
        chunk = provider_ids[start : start + 500]
        if _is_pg(conn):
            result = conn.exec_driver_sql(PG_LEDGER_BY_PROVIDER, {"ids": chunk})
        else:
            result = conn.execute(LEDGER_BY_PROVIDER, {"ids": chunk})
        for row in result:
            m = LedgerRow(*row)
            ledger.by_provider.setdefault(m.provider_message_id or "", []).append(m)
            ledger.by_id[m.id] = m
    tagged = {
        t
        for r in records
        if r.provider_id not in ledger.by_provider and (t := _tag(r.tags, TAG_MESSAGE)) is not None
    }
    if tagged:
        for row in conn.execute(LEDGER_BY_ID, {"ids": sorted(tagged)}):
            ledger.by_id[row.id] = LedgerRow(*row)
    return ledger


def _match(conn: Connection, ledger: _Ledger, r: SesRecord) -> NewEvent | None:
    rows = ledger.by_provider.get(r.provider_id, [])
    if not rows:
        tagged = _tag(r.tags, TAG_MESSAGE)
        row = ledger.by_id.get(tagged) if tagged is not None else None
        workspace_tag = _tag(r.tags, TAG_WORKSPACE)
        campaign_tag = _tag(r.tags, TAG_CAMPAIGN)
        if (
            row is None
            or (workspace_tag is not None and workspace_tag != row.workspace_id)
            or (campaign_tag is not None and campaign_tag != row.campaign_id)
        ):
            return None
        rows = [row]
    message = next((m for m in rows if m.email.lower() == r.recipient), None)
    contact_id = message.contact_id if message is not None else None
    if message is None:
        # The recipient is not the ledger's address (several recipients, or a rewrite):
        # attach to the message and find the contact by address in its workspace.
        message = rows[0]
        contact_id = conn.scalar(
            select(Contact.id).where(
                Contact.workspace_id == message.workspace_id, Contact.email == r.recipient
            )
        )
    is_machine, reason = False, None
    if r.type in ("open", "click"):
        is_machine, reason = classify_open(r.user_agent, message.sent_at, r.occurred_at)
        if reason:
            r.data["machine_reason"] = reason
    return NewEvent(
        workspace_id=message.workspace_id,
        type=r.type,
        dedupe_key=r.dedupe_key,
        occurred_at=r.occurred_at,
        source="ses",
        message=message,
        contact_id=contact_id,
        email=r.recipient,
        url=r.url,
        bounce_type=r.bounce_type,
        user_agent=r.user_agent,
        is_machine=is_machine,
        data=r.data,
        error=r.error,
    )


# ---------------------------------------------------------------- our pixel, links, unsubscribe


def _message(session: Session, actor: Actor, message_id: int) -> Message:
    message = session.get(Message, message_id)
    if message is None or message.workspace_id != actor.workspace_id:
        raise NotFound("No such message in this workspace.")
    return message


def _own_event(
    actor: Actor,
    message: Message,
    type_: str,
    at: Any,
    key: str,
    user_agent: str | None,
    ip: str | None,
    url: str | None = None,
) -> NewEvent:
    """An open or click of our own tracking, classified as human or machine."""
    is_machine, reason = classify_open(user_agent, message.sent_at, at)
    data: dict[str, Any] = {"ip": ip}
    if reason:
        data["machine_reason"] = reason
    return NewEvent(
        workspace_id=actor.workspace_id,
        type=type_,
        dedupe_key=f"own:{type_}:{message.id}:{int(at.timestamp())}:{key}",
        occurred_at=at,
        source="own",
        message=message,
        contact_id=message.contact_id,
        email=message.email,
        url=url,
        user_agent=user_agent,
        is_machine=is_machine,
        data=data,
    )


def record_open(
    session: Session, actor: Actor, message_id: int, user_agent: str | None, ip: str | None
) -> bool:
    """Store an open of our pixel; True when it was new (not a reload in the same second)."""
    message = _message(session, actor, message_id)
    key = _key(user_agent)[:12]
    event = _own_event(actor, message, "open", now(), key, user_agent, ip)
    return bool(store_events(session, [event]))


def record_click(
    session: Session,
    actor: Actor,
    message_id: int,
    url: str,
    user_agent: str | None,
    ip: str | None,
) -> str:
    """Store a click on a tracked link of the message; returns where to send the reader.

    `url` comes from a token signed when the message was rendered, so it is a link the
    message really contained."""
    message = _message(session, actor, message_id)
    key = _key(url, user_agent)[:16]
    store_events(session, [_own_event(actor, message, "click", now(), key, user_agent, ip, url)])
    return url


@dataclass(frozen=True)
class UnsubscribePage:
    workspace_name: str
    email: str
    status: str


def _unsubscribe_contact(
    session: Session, actor: Actor, contact_id: int, message_id: int | None
) -> tuple[Contact, Workspace, Message | None]:
    contact = session.get(Contact, contact_id)
    if contact is None or contact.workspace_id != actor.workspace_id:
        raise NotFound("No such contact in this workspace.")
    message = None
    if message_id is not None:
        message = _message(session, actor, message_id)
        if message.contact_id != contact.id:
            raise NotFound("That message was not sent to this contact.")
    workspace = session.get(Workspace, actor.workspace_id)
    assert workspace is not None  # the contact's foreign key guarantees it
    return contact, workspace, message


def describe_unsubscribe(
    session: Session, actor: Actor, contact_id: int, message_id: int | None
) -> UnsubscribePage:
    """What the unsubscribe page shows: the workspace, the address, its status."""
    contact, workspace, _ = _unsubscribe_contact(session, actor, contact_id, message_id)
    return UnsubscribePage(workspace.name, contact.email, contact.status)


def unsubscribe(
    session: Session, actor: Actor, contact_id: int, message_id: int | None, via: str
) -> UnsubscribePage:
    """Unsubscribe the contact at once: status, suppression and one unsubscribe event."""
    contact, workspace, message = _unsubscribe_contact(session, actor, contact_id, message_id)
    event = NewEvent(
        workspace_id=actor.workspace_id,
        type="unsubscribe",
        dedupe_key=f"own:unsubscribe:{contact.id}:{message.id if message else 0}",
        occurred_at=now(),
        source="own",
        message=message,
        contact_id=contact.id,
        email=contact.email,
        data={"via": via},
    )
    store_events(session, [event])
    session.refresh(contact)
    return UnsubscribePage(workspace.name, contact.email, contact.status)
