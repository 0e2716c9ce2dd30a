"""What comes back: events, the webhook's SNS inbox; and the shared rate limiter's state
and background jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.infra.clock import now
from core.models.base import JOB_STATUSES, Base, BigId, JSONType, _one_of, _ts
from core.models.statuses import JobStatus

# A person's open or click (core.contacts.sunset's `human_engagement`, as SQL): the partial
# index's predicate, written as the query renders it so PostgreSQL can match the two.
ENGAGED = "type IN ('open', 'click') AND is_machine IS false"

# JSONB on PostgreSQL (indexable, compact), JSON text on SQLite.


class Event(Base):
    __tablename__ = "event"
    __table_args__ = (
        UniqueConstraint("dedupe_key", name="uq_event_dedupe_key"),
        Index("ix_event_contact_type", "contact_id", "type", "occurred_at"),
        Index("ix_event_workspace_type_time", "workspace_id", "type", "occurred_at"),
        Index("ix_event_message", "message_id"),
        # Segments: recent activity of any campaign, and one campaign's activity, as
        # index-only scans that feed a hash of contact ids.
        Index("ix_event_type_time_contact", "type", "occurred_at", "contact_id"),
        Index("ix_event_campaign_type_contact", "campaign_id", "type", "contact_id"),
        # Analytics: covering indexes so a campaign report reads the index only.
        # The timeline one also serves (campaign_id, type, occurred_at) queries (0010).
        Index(
            "ix_event_campaign_report", "campaign_id", "type", "source", "is_machine", "message_id"
        ),
        Index(
            "ix_event_campaign_timeline",
            "campaign_id",
            "type",
            "source",
            "is_machine",
            "occurred_at",
        ),
        # The sunset recompute: each contact's human opens and clicks in contact order, read
        # from the index alone (core.contacts.sunset, migration 0026).
        Index(
            "ix_event_engaged",
            "workspace_id",
            "contact_id",
            "occurred_at",
            postgresql_where=text(ENGAGED),
            sqlite_where=text(ENGAGED),
        ),
    )

    # No foreign keys, like the ledger: PostgreSQL checked four per event, each taking a
    # share lock on the workspace, campaign, message and contact rows, which concurrent
    # webhook writers then shared as multixacts. The ids come from ledger rows the same
    # transaction reads; `core` deletes events where it deletes their campaign
    # (`campaigns.delete_campaign`) or contact (`contacts.delete_contacts`).
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(Integer)
    campaign_id: Mapped[int | None] = mapped_column(Integer)
    message_id: Mapped[int | None] = mapped_column(BigId)
    contact_id: Mapped[int | None] = mapped_column(BigId)
    type: Mapped[str] = mapped_column(String(24))
    occurred_at: Mapped[datetime] = _ts()
    # "own" (our pixel, links, unsubscribe page) or "ses" (notifications through SNS).
    source: Mapped[str] = mapped_column(String(8), default="own", server_default="own")
    url: Mapped[str | None] = mapped_column(Text)
    bounce_type: Mapped[str | None] = mapped_column(String(8))  # hard | soft
    user_agent: Mapped[str | None] = mapped_column(Text)
    is_machine: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default="{}")
    dedupe_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _ts()


class SnsMessage(Base):
    """Every SNS MessageId received, so a replay is acknowledged and stored once; and the
    webhook's inbox: a Notification is stored here with its `body` (the SES event) when it
    is acknowledged, and its events are made from it just after, off the request path
    (core.ingest.inbox.process_sns_backlog). `body` is NULL once that is done."""

    __tablename__ = "sns_message"
    __table_args__ = (
        # The backlog, oldest first; it holds only what is pending, so it stays small.
        Index(
            "ix_sns_message_pending",
            "received_at",
            postgresql_where=text("body IS NOT NULL"),
            sqlite_where=text("body IS NOT NULL"),
        ),
    )

    message_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    topic_arn: Mapped[str] = mapped_column(String(300))
    received_at: Mapped[datetime] = _ts()
    body: Mapped[str | None] = mapped_column(Text)
    # Failed attempts to make its events; after MAX_SNS_ATTEMPTS it is left for a person.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)


class RateLimit(Base):
    """Shared send-rate state: the next free send slot per key (workspace), across workers."""

    __tablename__ = "rate_limit"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    next_slot: Mapped[float] = mapped_column(Float, default=0.0)


class Job(Base):
    """Long-running background work the UI follows (imports, rollups)."""

    __tablename__ = "job"
    __table_args__ = (
        Index("ix_job_workspace_kind", "workspace_id", "kind", "created_at"),
        _one_of("status", JOB_STATUSES, "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.PENDING.value)
    progress: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    total: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default="{}")
    result: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default="{}")
    error: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = _ts()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=now, onupdate=now, server_default=func.now()
    )
