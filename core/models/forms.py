"""Signup forms, the consent record, and the public service's throttle log (issue 17)."""

from __future__ import annotations

import secrets
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
    false,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.infra.clock import now
from core.models.base import CONSENT_ACTIONS, CONSENT_SOURCES, Base, BigId, JSONType, _one_of, _ts


def new_form_id() -> str:
    """A form's public id: 12 URL-safe characters, so forms cannot be listed by counting."""
    return secrets.token_urlsafe(9)


class Form(Base):
    """A signup form: served at `/f/{id}` by the public service, embeddable elsewhere."""

    __tablename__ = "form"
    __table_args__ = (UniqueConstraint("workspace_id", "name", name="uq_form_ws_name"),)

    id: Mapped[str] = mapped_column(String(16), primary_key=True, default=new_form_id)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    # The lists a signup joins (ids of the workspace's lists; a deleted list is skipped).
    list_ids: Mapped[list[int]] = mapped_column(JSONType, default=list, server_default="[]")
    # The fields asked besides email, in order: [{"key": "first_name", "required": true}].
    fields: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONType, default=list, server_default="[]"
    )
    consent_text: Mapped[str] = mapped_column(Text, default="", server_default="")
    success_message: Mapped[str] = mapped_column(Text, default="", server_default="")
    check_inbox_message: Mapped[str] = mapped_column(Text, default="", server_default="")
    redirect_url: Mapped[str] = mapped_column(Text, default="", server_default="")
    welcome_template_id: Mapped[int | None] = mapped_column(
        ForeignKey("template.id", ondelete="SET NULL")
    )
    # Every signup needs the confirmation link; lists whose opt_in is "double" need it
    # whatever this says.
    double_opt_in: Mapped[bool] = mapped_column(Boolean, default=True, server_default=false())
    created_at: Mapped[datetime] = _ts()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=now, onupdate=now, server_default=func.now()
    )


class Consent(Base):
    """One row per consent event, never updated: the proof GDPR art. 7(1) asks for.

    A double-opt-in signup appends a `request` (what was shown, when, from where); its
    confirmation appends a `confirm` (or `resubscribe`) naming the request in
    `request_id`, which is unique: a confirmation link works once, even when two
    clicks arrive together. The rows of a contact go with the contact."""

    __tablename__ = "consent"
    __table_args__ = (
        Index("ix_consent_contact_time", "contact_id", "created_at"),
        Index("ix_consent_workspace_time", "workspace_id", "created_at"),
        UniqueConstraint("request_id", name="uq_consent_request_id"),
        _one_of("action", CONSENT_ACTIONS, "action"),
        _one_of("source", CONSENT_SOURCES, "source"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contact.id", ondelete="CASCADE"))
    list_ids: Mapped[list[int]] = mapped_column(JSONType, default=list, server_default="[]")
    action: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    # The form id, the import's file name, ...; `user_id` names the user who acted.
    source_detail: Mapped[str] = mapped_column(String(300), default="", server_default="")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = _ts()
    ip: Mapped[str] = mapped_column(String(64), default="", server_default="")
    user_agent: Mapped[str] = mapped_column(Text, default="", server_default="")
    consent_text: Mapped[str] = mapped_column(Text, default="", server_default="")
    # A confirmation: the request it confirms, and when and from where it was confirmed.
    request_id: Mapped[int | None] = mapped_column(BigId)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    confirm_ip: Mapped[str] = mapped_column(String(64), default="", server_default="")
    confirm_user_agent: Mapped[str] = mapped_column(Text, default="", server_default="")


class FormThrottle(Base):
    """What the public service has done lately, per key (an IP, a hashed address): rows
    counted in a sliding window under a per-key lock, so the caps hold across processes.
    Beat deletes rows older than a day."""

    __tablename__ = "form_throttle"
    __table_args__ = (Index("ix_form_throttle_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class SignupInbox(Base):
    """Signups the public service has accepted and the worker has not yet subscribed.

    The request path checks a post and appends it here (many posts per transaction); the
    worker's drain runs the subscription (contact, consent, confirmation mail) and deletes
    the row in the same transaction (core.forms.inbox). A row that keeps failing stays,
    with its error, after MAX_SIGNUP_ATTEMPTS tries."""

    __tablename__ = "signup_inbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    form_id: Mapped[str] = mapped_column(String(16))
    email: Mapped[str] = mapped_column(String(320))  # normalized
    # The form's other answers, checked and coerced: {"first_name": "Ada", "plan": 3}.
    fields: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default="{}")
    ip: Mapped[str] = mapped_column(String(64), default="", server_default="")
    user_agent: Mapped[str] = mapped_column(Text, default="", server_default="")
    consent_text: Mapped[str] = mapped_column(Text, default="", server_default="")
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
