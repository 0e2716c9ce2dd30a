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

Consequences, applied once per new event: a human open or click clears the contact's
sunset flag (core.contacts.sunset); a hard bounce suppresses the address
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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    Table,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.contacts.sunset import ENGAGING, reactivate
from core.infra.clock import as_utc, now
from core.models import Contact, Event, Message, Suppression, Workspace
from core.models.statuses import MessageStatus

log = logging.getLogger(__name__)


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


def counted() -> ColumnElement[bool]:
    """Events that count in reports: opens and clicks only from the workspace's source."""
    chosen = (
        select(Workspace.tracking_source)
        .where(Workspace.id == Event.workspace_id)
        .scalar_subquery()
    )
    return or_(Event.type.not_in(("open", "click")), Event.source == chosen)


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
    engaged: set[int] = set()
    for e in events:
        if e.type in ENGAGING and not e.is_machine and e.contact_id is not None:
            engaged.add(e.contact_id)
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
    # The sunset policy: a human open or click makes an inactive contact active at once.
    reactivate(conn, engaged)
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
