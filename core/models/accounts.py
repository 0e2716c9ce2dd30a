"""Workspaces, users and what signs them in: sessions ended early, reset tokens,
invitations; the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.models.base import Base, BigId, JSONType, _ts

# JSONB on PostgreSQL (indexable, compact), JSON text on SQLite.


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
    # An IANA zone ("Europe/Berlin"): automations' dates and until_time waits (migration 0019).
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    # The deliverability guard (core.deliverability): a sending campaign is paused when its
    # hard-bounce or complaint rate passes these (fractions: 0.04 is 4 %), below SES's
    # review levels (5 %, 0.1 %). Owners and admins change them in Settings.
    guard_bounce_limit: Mapped[float] = mapped_column(Float, default=0.04, server_default="0.04")
    guard_complaint_limit: Mapped[float] = mapped_column(
        Float, default=0.0008, server_default="0.0008"
    )
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
