"""The address book: contacts, custom fields, lists and memberships, suppressions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.infra.clock import now
from core.models.base import (
    CONTACT_STATUSES,
    LIST_OPT_INS,
    LIST_VISIBILITIES,
    Base,
    BigId,
    JSONType,
    _one_of,
    _ts,
)

# JSONB on PostgreSQL (indexable, compact), JSON text on SQLite.


class Contact(Base):
    __tablename__ = "contact"
    __table_args__ = (
        UniqueConstraint("workspace_id", "email", name="uq_contact_workspace_email"),
        Index("ix_contact_workspace_status", "workspace_id", "status"),
        Index("ix_contact_workspace_created", "workspace_id", "created_at"),
        # Automations' exit pass: contacts whose status changed since its watermark (0019).
        Index("ix_contact_status_updated", "status", "updated_at"),
        # Only the inactive contacts (sunset policy): the segment, the wizard's count and the
        # recompute's "who is flagged now" read this small index.
        Index(
            "ix_contact_inactive",
            "workspace_id",
            "inactive_since",
            postgresql_where=text("inactive_since IS NOT NULL"),
            sqlite_where=text("inactive_since IS NOT NULL"),
        ),
        # Contacts with a time zone (0024): a time-zone campaign's snapshot dates each
        # zone's ledger rows with one UPDATE that reads only that zone's contacts.
        Index(
            "ix_contact_workspace_timezone",
            "workspace_id",
            "timezone",
            postgresql_where=text("timezone IS NOT NULL"),
            sqlite_where=text("timezone IS NOT NULL"),
        ),
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
    # An IANA zone ("Europe/Berlin"), checked by core.contacts; automations' until_time uses it.
    timezone: Mapped[str | None] = mapped_column(String(64))
    # Set by the sunset recompute, cleared by a human open or click (core.contacts.sunset).
    inactive_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
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
    __table_args__ = (
        UniqueConstraint("workspace_id", "name", name="uq_contact_list_ws_name"),
        _one_of("visibility", LIST_VISIBILITIES, "visibility"),
        _one_of("opt_in", LIST_OPT_INS, "opt_in"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    # public: offered on signup forms and in the preference centre; private: never shown.
    visibility: Mapped[str] = mapped_column(String(8), default="private", server_default="private")
    # double: joining it from a form needs the confirmation link (migration 0016).
    opt_in: Mapped[str] = mapped_column(String(8), default="single", server_default="single")
    created_at: Mapped[datetime] = _ts()


class ListMembership(Base):
    __tablename__ = "list_membership"
    __table_args__ = (
        Index("ix_list_membership_contact", "contact_id", "list_id"),
        # Beat's list enrollment: the members who joined since its mark (migration 0026).
        Index("ix_list_membership_list_created", "list_id", "created_at"),
    )

    list_id: Mapped[int] = mapped_column(
        ForeignKey("contact_list.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True
    )
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


class SunsetPolicy(Base):
    """A workspace's sunset policy when it is not the default (migration 0023): contacts who
    received at least `min_campaigns` campaigns over at least `min_days` days without a human
    open or a click are inactive. `segment_id` is its built-in segment of them."""

    __tablename__ = "sunset_policy"

    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspace.id", ondelete="CASCADE"), primary_key=True
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    min_campaigns: Mapped[int] = mapped_column(Integer, default=10, server_default="10")
    min_days: Mapped[int] = mapped_column(Integer, default=120, server_default="120")
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segment.id", ondelete="SET NULL"))
    computed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=now, onupdate=now, server_default=func.now()
    )
