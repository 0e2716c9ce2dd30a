"""The SQL schema (SQLAlchemy models, one set for SQLite and PostgreSQL) and
`statuses`: every status a row can be in and the campaign action table.

May import: `core.infra`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.infra.clock import now
from core.models.statuses import CampaignStatus, ContactStatus, JobStatus, MessageStatus

# JSONB on PostgreSQL (indexable, compact), JSON text on SQLite.
JSONType = JSON().with_variant(JSONB(), "postgresql")
# 64-bit ids where tables grow without bound; SQLite needs INTEGER to alias its rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)

    if TYPE_CHECKING:
        # Every model here maps one Table; DeclarativeBase only promises a FromClause.
        __table__: ClassVar[Table]


def _ts() -> Mapped[datetime]:
    return mapped_column(
        DateTime(timezone=True), default=now, server_default=func.now(), nullable=False
    )


ROLES = ("owner", "admin", "editor", "viewer")
CONTACT_STATUSES = tuple(s.value for s in ContactStatus)
FIELD_TYPES = ("text", "number", "date", "boolean")
CAMPAIGN_STATUSES = tuple(s.value for s in CampaignStatus)
MESSAGE_STATUSES = tuple(s.value for s in MessageStatus)
JOB_STATUSES = tuple(s.value for s in JobStatus)


def _one_of(column: str, values: tuple[str, ...], name: str) -> CheckConstraint:
    """A CHECK that `column` holds one of `values` (migration 0015 adds them)."""
    listed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=name)


EVENT_TYPES = (
    "sent",
    "delivered",
    "open",
    "click",
    "bounce",
    "complaint",
    "unsubscribe",
    "reject",
    "delivery_delay",
    "rendering_failure",
    "subscription",
)


class Workspace(Base):
    __tablename__ = "workspace"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    from_name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    from_email: Mapped[str] = mapped_column(String(320), default="", server_default="")
    reply_to: Mapped[str] = mapped_column(String(320), default="", server_default="")
    postal_address: Mapped[str] = mapped_column(Text, default="", server_default="")
    ses_configuration_set: Mapped[str] = mapped_column(String(200), default="", server_default="")
    max_send_rate: Mapped[float] = mapped_column(Float, default=14.0)
    # Where opens and clicks are counted from: our own pixel/links ("own") or SES ("ses").
    tracking_source: Mapped[str] = mapped_column(String(8), default="own", server_default="own")
    created_at: Mapped[datetime] = _ts()

    users: Mapped[list[User]] = relationship(back_populates="workspace")


class User(Base):
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="editor")
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Sessions that signed in before this instant are ended (password reset or change).
    sessions_valid_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _ts()

    workspace: Mapped[Workspace] = relationship(back_populates="users")


class RevokedSession(Base):
    """A signed-out session: its cookie no longer signs in, though it has not expired.

    A session is named by its user and its cookie token's expiry instant (in
    microseconds), which streamlit-authenticator fixes at sign-in and carries in the token."""

    __tablename__ = "revoked_session"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True
    )
    token_exp: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # When the cookie would have expired anyway: the row can be swept after it.
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PasswordResetToken(Base):
    __tablename__ = "password_reset_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = _ts()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Invitation(Base):
    __tablename__ = "invitation"

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = _ts()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Contact(Base):
    __tablename__ = "contact"
    __table_args__ = (
        UniqueConstraint("workspace_id", "email", name="uq_contact_workspace_email"),
        Index("ix_contact_workspace_status", "workspace_id", "status"),
        Index("ix_contact_workspace_created", "workspace_id", "created_at"),
        _one_of("status", CONTACT_STATUSES, "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    first_name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    last_name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    company: Mapped[str] = mapped_column(String(200), default="", server_default="")
    city: Mapped[str] = mapped_column(String(200), default="", server_default="")
    country: Mapped[str] = mapped_column(String(200), default="", server_default="")
    phone: Mapped[str] = mapped_column(String(64), default="", server_default="")
    custom_fields: Mapped[dict[str, Any]] = mapped_column(
        JSONType, default=dict, server_default="{}"
    )
    status: Mapped[str] = mapped_column(
        String(16), default="subscribed", server_default="subscribed"
    )
    source: Mapped[str] = mapped_column(String(64), default="manual", server_default="manual")
    created_at: Mapped[datetime] = _ts()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=now, onupdate=now, server_default=func.now()
    )


class CustomField(Base):
    __tablename__ = "custom_field"
    __table_args__ = (UniqueConstraint("workspace_id", "key", name="uq_custom_field_ws_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16), default="text")
    created_at: Mapped[datetime] = _ts()


class ContactList(Base):
    __tablename__ = "contact_list"
    __table_args__ = (UniqueConstraint("workspace_id", "name", name="uq_contact_list_ws_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[datetime] = _ts()


class ListMembership(Base):
    __tablename__ = "list_membership"
    __table_args__ = (Index("ix_list_membership_contact", "contact_id", "list_id"),)

    list_id: Mapped[int] = mapped_column(
        ForeignKey("contact_list.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = _ts()


class Segment(Base):
    __tablename__ = "segment"
    __table_args__ = (UniqueConstraint("workspace_id", "name", name="uq_segment_ws_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    rules: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default="{}")
    created_at: Mapped[datetime] = _ts()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=now, onupdate=now, server_default=func.now()
    )


class Template(Base):
    __tablename__ = "template"
    __table_args__ = (Index("ix_template_workspace_updated", "workspace_id", "updated_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(998), default="", server_default="")
    html: Mapped[str] = mapped_column(Text, default="", server_default="")
    text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _ts()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=now, onupdate=now, server_default=func.now()
    )


class Campaign(Base):
    __tablename__ = "campaign"
    __table_args__ = (
        Index("ix_campaign_workspace_status", "workspace_id", "status"),
        Index("ix_campaign_status_scheduled", "status", "scheduled_at"),
        _one_of("status", CAMPAIGN_STATUSES, "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="draft")
    # {"all": bool, "list_ids": [...], "segment_id": id | null, "contact_ids": [...]}
    audience: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default="{}")
    from_name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    from_email: Mapped[str] = mapped_column(String(320), default="", server_default="")
    reply_to: Mapped[str] = mapped_column(String(320), default="", server_default="")
    track_opens: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    track_clicks: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    scheduled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    # A/B testing: test share in percent (100 = compare only), the rule, the wait.
    ab_test_share: Mapped[int] = mapped_column(Integer, default=100, server_default="100")
    ab_winner_metric: Mapped[str] = mapped_column(String(16), default="click")
    ab_wait_minutes: Mapped[int] = mapped_column(Integer, default=240, server_default="240")
    ab_min_confidence: Mapped[float] = mapped_column(Float, default=0.9)
    ab_seed: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    ab_winner_variant_id: Mapped[int | None] = mapped_column(Integer)
    ab_decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ab_decision: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default="{}")
    created_at: Mapped[datetime] = _ts()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=now, onupdate=now, server_default=func.now()
    )

    variants: Mapped[list[Variant]] = relationship(
        back_populates="campaign", order_by="Variant.id", cascade="all, delete-orphan"
    )


class Variant(Base):
    __tablename__ = "variant"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(16), default="A")
    subject: Mapped[str] = mapped_column(String(998), default="", server_default="")
    from_name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    template_id: Mapped[int | None] = mapped_column(ForeignKey("template.id", ondelete="SET NULL"))
    # Content snapshot taken when sending starts, so later template edits change nothing.
    html: Mapped[str] = mapped_column(Text, default="", server_default="")
    text: Mapped[str | None] = mapped_column(Text)
    share: Mapped[float] = mapped_column(Float, default=1.0, server_default="1")
    created_at: Mapped[datetime] = _ts()

    campaign: Mapped[Campaign] = relationship(back_populates="variants")


class Message(Base):
    """The ledger: one row per recipient per campaign; what makes sending exactly-once.

    The ledger carries no foreign keys. A snapshot writes a million rows in one INSERT …
    SELECT, and PostgreSQL checks each foreign key row by row: four of them made two thirds
    of the snapshot's time (the goal is a million rows in under 10 s). The snapshot takes its ids from
    the campaign and contact rows it reads, and `core` deletes a campaign's or a contact's
    ledger rows where it deletes the campaign (`campaigns.delete_campaign`) or the contact
    (`contacts.delete_contacts`). A/B variants are removed only before the snapshot.

    (contact_id, campaign_id) is unique, which makes sending exactly-once, and serves the
    contact's history too, so no second index on contact_id is kept up to date per row."""

    __tablename__ = "message"
    __table_args__ = (
        UniqueConstraint("contact_id", "campaign_id", name="uq_message_contact_campaign"),
        Index("ix_message_campaign_status_id", "campaign_id", "status", "id"),
        # Only sent messages have a provider id; queued rows stay out of this index.
        Index(
            "ix_message_provider_id",
            "provider_message_id",
            postgresql_where=text("provider_message_id IS NOT NULL"),
            sqlite_where=text("provider_message_id IS NOT NULL"),
        ),
        _one_of("status", MESSAGE_STATUSES, "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(Integer)
    campaign_id: Mapped[int] = mapped_column(Integer)
    contact_id: Mapped[int] = mapped_column(BigId)
    variant_id: Mapped[int | None] = mapped_column(Integer)
    email: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16), default="queued", server_default="queued")
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str] = mapped_column(Text, default="", server_default="")
    queued_at: Mapped[datetime] = _ts()
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A/B testing: this recipient was held out of the test and gets the winner (the "rest").
    ab_rest: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


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


class Suppression(Base):
    __tablename__ = "suppression"
    __table_args__ = (UniqueConstraint("workspace_id", "email", name="uq_suppression_ws_email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(32))  # bounce | complaint | unsubscribe | manual
    detail: Mapped[str] = mapped_column(Text, default="", server_default="")
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


class AuditLog(Base):
    """Who did what that matters later: re-subscriptions, role changes, deletions."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_workspace_time", "workspace_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200), default="", server_default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default="{}")
    created_at: Mapped[datetime] = _ts()
