"""Saved automations: create (validated), activate, pause, resume, enroll by hand, and the
status figures (per step: waiting, sent, opened, clicked)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from core.automations.model import (
    Definition,
    ListJoined,
    Manual,
    SegmentEntered,
    check_definition,
    dump_definition,
    parse_definition,
    step_kind,
    walk,
)
from core.infra import clock
from core.infra.errors import NotFound, ValidationFailed
from core.infra.permissions import Actor
from core.models import (
    Automation,
    BeatMark,
    Contact,
    Enrollment,
    Event,
    Message,
    Suppression,
)
from core.models.statuses import (
    LEFT,
    AutomationStatus,
    ContactStatus,
    EnrollmentStatus,
)

A, E = AutomationStatus, EnrollmentStatus


class AutomationNotRunnable(ValidationFailed):
    """An action the automation's status does not allow."""


def definition_of(automation: Automation) -> Definition:
    return parse_definition(automation.definition)


def create_automation(
    session: Session, actor: Actor, data: Any, *, activate: bool = True
) -> Automation:
    """Validate and save a definition; active at once unless `activate` is False (a draft)."""
    actor.require("edit")
    definition = check_definition(session, actor.workspace_id, data)
    taken = session.scalar(
        select(Automation.id).where(
            Automation.workspace_id == actor.workspace_id, Automation.name == definition.name
        )
    )
    if taken is not None:
        raise ValidationFailed(f"An automation named {definition.name!r} exists already.")
    automation = Automation(
        workspace_id=actor.workspace_id,
        name=definition.name,
        definition=dump_definition(definition),
        status=A.DRAFT,
        created_by_id=actor.user_id,
    )
    session.add(automation)
    session.flush()
    if activate:
        activate_automation(session, actor, automation.id)
    return automation


def get_automation(session: Session, actor: Actor, automation_id: int) -> Automation:
    automation = session.get(Automation, automation_id)
    if automation is None or automation.workspace_id != actor.workspace_id:
        raise NotFound("No such automation in this workspace.")
    return automation


def activate_automation(session: Session, actor: Actor, automation_id: int) -> Automation:
    """A draft starts: contacts who join its list from now on are enrolled."""
    actor.require("edit")
    automation = get_automation(session, actor, automation_id)
    if automation.status != A.DRAFT:
        raise AutomationNotRunnable("Only a draft automation can be activated.")
    automation.status = A.ACTIVE
    automation.activated_at = clock.now()
    trigger = definition_of(automation).trigger
    if isinstance(trigger, SegmentEntered):
        # Who is in the segment now is not new: only later arrivals are enrolled. (Imported
        # here: core.automations.triggers builds on this module.)
        from core.automations.triggers import remember_matches

        remember_matches(session, automation, trigger.segment_id)
    session.flush()
    return automation


def pause_automation(session: Session, actor: Actor, automation_id: int) -> Automation:
    """Stop sending and hold every wait until it is resumed."""
    actor.require("edit")
    automation = get_automation(session, actor, automation_id)
    if automation.status != A.ACTIVE:
        raise AutomationNotRunnable("Only an active automation can be paused.")
    automation.status = A.PAUSED
    automation.paused_at = clock.now()
    session.flush()
    return automation


def resume_automation(session: Session, actor: Actor, automation_id: int) -> Automation:
    """Continue: waits are held, so each due time moves on by how long it was paused."""
    actor.require("edit")
    automation = get_automation(session, actor, automation_id)
    if automation.status != A.PAUSED:
        raise AutomationNotRunnable("Only a paused automation can be resumed.")
    now = clock.now()
    paused_at = clock.as_utc(automation.paused_at) or now
    held = now - paused_at
    for enrollment in session.scalars(
        select(Enrollment).where(
            Enrollment.automation_id == automation.id,
            Enrollment.status == E.ACTIVE,
            Enrollment.due_at.is_not(None),
            Enrollment.due_at > paused_at,
        )
    ):
        assert enrollment.due_at is not None
        enrollment.due_at = clock.as_utc(enrollment.due_at) + held
    automation.status = A.ACTIVE
    automation.paused_at = None
    session.flush()
    return automation


def _insert(session: Session):
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def mark_checked(session: Session, automation: Automation, at: datetime) -> None:
    """Beat looked at the automation's trigger at `at` (its high-water mark). Not an edit:
    `updated_at`, the list's "Changed", stays as it was."""
    session.execute(
        update(Automation)
        .where(Automation.id == automation.id)
        .values(trigger_checked_at=at, updated_at=Automation.updated_at)
        .execution_options(synchronize_session=False)
    )
    set_committed_value(automation, "trigger_checked_at", at)


def eligible(session: Session, workspace_id: int):
    """Contacts an automation may enroll: subscribed and not suppressed (a condition)."""
    return and_(
        Contact.workspace_id == workspace_id,
        Contact.status == ContactStatus.SUBSCRIBED,
        ~select(Suppression.id)
        .where(Suppression.workspace_id == workspace_id, Suppression.email == Contact.email)
        .exists(),
    )


def enroll_contact(
    session: Session, actor: Actor, automation_id: int, contact_id: int
) -> Enrollment | None:
    """Enroll one contact by hand (a manual trigger, or a test); None when the contact is
    not subscribed or is already in it (or has been, without reentry)."""
    actor.require("edit")
    automation = get_automation(session, actor, automation_id)
    if automation.status == A.DRAFT:
        raise AutomationNotRunnable("Activate the automation before enrolling contacts.")
    contact_ok = session.scalar(
        select(Contact.id).where(Contact.id == contact_id, eligible(session, actor.workspace_id))
    )
    if contact_ok is None:
        return None
    definition = definition_of(automation)
    last = session.execute(
        select(Enrollment.generation, Enrollment.status)
        .where(Enrollment.automation_id == automation.id, Enrollment.contact_id == contact_id)
        .order_by(Enrollment.generation.desc())
        .limit(1)
    ).first()
    if last is not None and (not definition.reentry or last.status == E.ACTIVE):
        return None
    generation = 1 if last is None else last.generation + 1
    now = clock.now()
    inserted = session.scalar(
        _insert(session)(Enrollment)
        .values(
            automation_id=automation.id,
            workspace_id=automation.workspace_id,
            contact_id=contact_id,
            generation=generation,
            status=E.ACTIVE,
            step_path="0",
            entered_step_at=now,
            due_at=now,
            created_at=now,
        )
        .on_conflict_do_nothing()
        .returning(Enrollment.id)
    )
    return session.get(Enrollment, inserted) if inserted is not None else None


def list_trigger_id(definition: Definition) -> int | None:
    trigger = definition.trigger
    return trigger.list_id if isinstance(trigger, ListJoined) else None


def is_manual(definition: Definition) -> bool:
    return isinstance(definition.trigger, Manual)


def automation_status(session: Session, actor: Actor, automation_id: int) -> dict[str, Any]:
    """The issue's status line: counts by enrollment status, and per step what is waiting
    there, sent from it, and opened (humans only) or clicked."""
    automation = get_automation(session, actor, automation_id)
    definition = definition_of(automation)
    by_status = dict(
        session.execute(
            select(Enrollment.status, func.count())
            .where(Enrollment.automation_id == automation.id)
            .group_by(Enrollment.status)
        ).all()
    )
    waiting = dict(
        session.execute(
            select(Enrollment.step_path, func.count())
            .where(Enrollment.automation_id == automation.id, Enrollment.status == E.ACTIVE)
            .group_by(Enrollment.step_path)
        ).all()
    )
    sent = dict(
        session.execute(
            select(Message.step_path, func.count())
            .where(Message.automation_id == automation.id, Message.status.in_(LEFT))
            .group_by(Message.step_path)
        ).all()
    )

    def people(kind: str) -> dict[str | None, int]:
        query = (
            select(Message.step_path, func.count(func.distinct(Message.id)))
            .join(Event, Event.message_id == Message.id)
            .where(Message.automation_id == automation.id, Event.type == kind)
            .group_by(Message.step_path)
        )
        if kind == "open":
            query = query.where(Event.is_machine.is_(False))
        return dict(session.execute(query).all())

    opened, clicked = people("open"), people("click")
    steps = []
    for path, step in walk(definition.steps):
        kind = step_kind(step)
        row: dict[str, Any] = {"path": path, "type": kind, "waiting": int(waiting.get(path, 0))}
        if kind == "send":
            row |= {
                "sent": int(sent.get(path, 0)),
                "opened": int(opened.get(path, 0)),
                "clicked": int(clicked.get(path, 0)),
            }
        steps.append(row)
    return {
        "status": automation.status,
        "enrolled": int(sum(by_status.values())),
        "active": int(by_status.get(E.ACTIVE, 0)),
        "finished": int(by_status.get(E.FINISHED, 0)),
        "exited": int(by_status.get(E.EXITED, 0)),
        "steps": steps,
    }


def exits_of(session: Session, automation_id: int) -> dict[str, int]:
    """Why contacts left early, by reason."""
    return dict(
        session.execute(
            select(Enrollment.reason, func.count())
            .where(Enrollment.automation_id == automation_id, Enrollment.status == E.EXITED)
            .group_by(Enrollment.reason)
        ).all()
    )


EXIT_MARK = "automation_exits"
# A status change is seen by the pass after its transaction commits; rows are re-read this
# far behind the mark, so a change committed up to this long after it was stamped is not
# missed. (The engine checks each contact again before every step anyway.)
EXIT_OVERLAP = timedelta(minutes=10)
EXIT_BATCH = 5000
GONE = (ContactStatus.UNSUBSCRIBED, ContactStatus.BOUNCED, ContactStatus.COMPLAINED)


def exit_unsubscribed(session: Session, at: datetime | None = None, batch: int = EXIT_BATCH) -> int:
    """Everyone active whose contact unsubscribed, bounced or complained leaves, with the
    contact's status as the reason; returns how many enrollments left.

    One UPDATE, watermarked and scoped, so a pass costs what changed, not how many contacts
    or workspaces there are: it reads only contacts whose status is one of those and whose
    `updated_at` (stamped with every status change) is at or after the last pass's mark
    less EXIT_OVERLAP (index `ix_contact_status_updated`), in workspaces with a running
    automation, that are still in one; at most `batch` of them. The mark moves on only
    when the pass saw them all; handled contacts drop out (none active), so the next pass
    continues where this one stopped."""
    now = at or clock.now()
    mark = session.get(BeatMark, EXIT_MARK)
    running = select(Automation.workspace_id).where(Automation.status.in_((A.ACTIVE, A.PAUSED)))
    active = (
        select(Enrollment.id)
        .where(Enrollment.contact_id == Contact.id, Enrollment.status == E.ACTIVE)
        .exists()
    )
    gone = select(Contact.id).where(
        Contact.status.in_(GONE), Contact.workspace_id.in_(running), active
    )
    if mark is not None:
        gone = gone.where(Contact.updated_at >= clock.as_utc(mark.at) - EXIT_OVERLAP)
    reason = select(Contact.status).where(Contact.id == Enrollment.contact_id).scalar_subquery()
    left = session.execute(
        update(Enrollment)
        .where(Enrollment.status == E.ACTIVE, Enrollment.contact_id.in_(gone.limit(batch)))
        .values(status=E.EXITED, reason=reason, finished_at=now, due_at=None)
        .returning(Enrollment.contact_id)
        .execution_options(synchronize_session=False)
    ).all()
    if len({contact_id for (contact_id,) in left}) < batch:
        session.execute(
            _insert(session)(BeatMark)
            .values(name=EXIT_MARK, at=now)
            .on_conflict_do_update(index_elements=["name"], set_={"at": now})
        )
    return len(left)
