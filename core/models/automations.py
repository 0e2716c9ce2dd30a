"""Automations (issue 18): the flow definitions and each contact's place in one.

A send step's ledger row is a `message` (core.models.campaigns) with `enrollment_id` and
`step_path` set and no campaign, unique per (enrollment, step), so tracking, the webhook,
suppression and reports treat it as any other message.

Reentry: an enrollment is unique per (automation, contact, generation); a contact who may
go through again gets the next generation, never a second row of the same one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from core.infra.clock import now
from core.models.base import Base, BigId, JSONType, _one_of, _ts
from core.models.statuses import AutomationStatus, EnrollmentStatus

AUTOMATION_STATUSES = tuple(s.value for s in AutomationStatus)
ENROLLMENT_STATUSES = tuple(s.value for s in EnrollmentStatus)


class Automation(Base):
    __tablename__ = "automation"
    __table_args__ = (
        UniqueConstraint("workspace_id", "name", name="uq_automation_ws_name"),
        Index("ix_automation_status", "status"),
        _one_of("status", AUTOMATION_STATUSES, "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    # The validated definition (core.automations.model), list names resolved to ids.
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict, server_default="{}")
    status: Mapped[str] = mapped_column(String(16), default="draft", server_default="draft")
    # Trigger watermark: list memberships made before this never enroll (set on activation).
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # While paused, waits are held: resuming moves every due time on by the pause's length.
    paused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Segment and date triggers: when beat last looked for contacts to enroll (0019); set on
    # activation, so a segment's members at that moment are never taken for newcomers.
    trigger_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = _ts()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=now, onupdate=now, server_default=func.now()
    )


class Enrollment(Base):
    """One contact's pass through an automation: where it is, and when it is next due."""

    __tablename__ = "enrollment"
    __table_args__ = (
        UniqueConstraint(
            "automation_id", "contact_id", "generation", name="uq_enrollment_automation_contact"
        ),
        # Beat's pass: the active enrollments that are due, oldest first, in id order among
        # equals, so the scan stops after its batch (migration 0020).
        Index("ix_enrollment_status_due_id", "status", "due_at", "id"),
        Index("ix_enrollment_contact", "contact_id", "status"),
        _one_of("status", ENROLLMENT_STATUSES, "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    automation_id: Mapped[int] = mapped_column(ForeignKey("automation.id", ondelete="CASCADE"))
    workspace_id: Mapped[int] = mapped_column(Integer)
    contact_id: Mapped[int] = mapped_column(BigId, ForeignKey("contact.id", ondelete="CASCADE"))
    generation: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    status: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    # Why it exited: unsubscribed | bounced | complained | exit step | a step that failed.
    reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    # The step it is at: "0", "2.then.1" (indexes into the definition's step lists).
    step_path: Mapped[str] = mapped_column(String(64), default="0", server_default="0")
    entered_step_at: Mapped[datetime] = _ts()
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A worker that claimed it holds it until then; a lost worker's claim lapses.
    leased_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = _ts()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A date trigger's occurrence ("2026-05-14": the date value, or this year's anniversary
    # of it): a contact is enrolled once per occurrence (migration 0019).
    trigger_key: Mapped[str | None] = mapped_column(String(32))


class AutomationMatch(Base):
    """A segment trigger's memory: the subscribed contacts that matched its segment when beat
    last looked. Newly matching contacts are the ones not here; leaving deletes the row, so
    re-entering is new again (enrolled again only with reentry)."""

    __tablename__ = "automation_match"

    automation_id: Mapped[int] = mapped_column(
        ForeignKey("automation.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("contact.id", ondelete="CASCADE"), primary_key=True
    )
    since: Mapped[datetime] = _ts()


class BeatMark(Base):
    """A watermark of a beat pass that works through what changed since it last ran
    (`automation_exits`: contacts' status changes, by `contact.updated_at`)."""

    __tablename__ = "beat_mark"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
