"""Segments, templates, campaigns with their variants, and the message ledger."""

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
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.infra.clock import now
from core.models.base import (
    CAMPAIGN_STATUSES,
    MESSAGE_STATUSES,
    Base,
    BigId,
    JSONType,
    _one_of,
    _ts,
)

# JSONB on PostgreSQL (indexable, compact), JSON text on SQLite.


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
        Index("ix_campaign_parent", "parent_campaign_id"),
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
    # A resend to non-openers names the campaign it follows up (migration 0023). No foreign
    # key: delete_campaign clears it when the parent goes.
    parent_campaign_id: Mapped[int | None] = mapped_column(Integer)
    # "At this time in each contact's time zone" (migration 0024): "HH:MM", or None for one
    # send at scheduled_at. The waves start at scheduled_at (core.campaigns.waves).
    local_send_time: Mapped[str | None] = mapped_column(String(5))
    # The latest moment up to which due waves were handed to batch tasks: beat's tick queues
    # the rows that fell due after it (core.sending.pipeline).
    waves_dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
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


# A campaign's message handed to the transport (statuses.LEFT, as SQL): the sunset index's
# predicate, written as the query renders it so PostgreSQL can match the two.
CAMPAIGN_LEFT = "campaign_id IS NOT NULL AND status IN ('sent', 'uncertain')"


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
        # Time-zone waves (0024): the rows of a wave that fell due, without walking the
        # campaign's rows that wait for later waves. Campaigns sent at once (due_at NULL)
        # stay out of it and pay nothing per row.
        Index(
            "ix_message_campaign_status_due",
            "campaign_id",
            "status",
            "due_at",
            postgresql_where=text("due_at IS NOT NULL"),
            sqlite_where=text("due_at IS NOT NULL"),
        ),
        # An automation's send step: one row per enrollment and step (migration 0017).
        UniqueConstraint("enrollment_id", "step_path", name="uq_message_enrollment_step"),
        # The dashboard's count of a workspace's automation mail (0019); campaigns' rows
        # stay out of it.
        Index(
            "ix_message_automation_sent",
            "workspace_id",
            "sent_at",
            postgresql_where=text("automation_id IS NOT NULL"),
            sqlite_where=text("automation_id IS NOT NULL"),
        ),
        # The sunset recompute: each contact's campaign mail that left, in contact order,
        # read from the index alone (core.contacts.sunset, migration 0026).
        Index(
            "ix_message_campaign_left",
            "workspace_id",
            "contact_id",
            "sent_at",
            postgresql_where=text(CAMPAIGN_LEFT),
            sqlite_where=text(CAMPAIGN_LEFT),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(Integer)
    # None for an automation's message (its enrollment and step say where it came from).
    campaign_id: Mapped[int | None] = mapped_column(Integer)
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
    automation_id: Mapped[int | None] = mapped_column(Integer)
    enrollment_id: Mapped[int | None] = mapped_column(BigId)
    step_path: Mapped[str | None] = mapped_column(String(64))
    # When a time-zone wave is due (core.campaigns.waves); None: send as soon as dispatched.
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
