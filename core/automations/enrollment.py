"""Enrollment by trigger: beat's set-based pass that enrolls the members who joined an
active automation's list since it was activated (whichever way they joined)."""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from core.automations.service import _insert, definition_of, eligible
from core.infra import clock
from core.models import Automation, Contact, Enrollment, ListMembership
from core.models.statuses import AutomationStatus, EnrollmentStatus

A, E = AutomationStatus, EnrollmentStatus


def enroll_from_lists(session: Session) -> int:
    """Enroll every subscribed contact who joined an active automation's list since it was
    activated and has no enrollment in it yet (or, with reentry, none active and none since
    joining). Set-based: one INSERT … SELECT per automation; the unique key makes a second
    pass, or a second worker, add nothing."""
    total = 0
    automations = session.scalars(select(Automation).where(Automation.status == A.ACTIVE)).all()
    now = clock.now()
    for automation in automations:
        definition = definition_of(automation)
        trigger = definition.trigger
        list_id = getattr(trigger, "list_id", None)
        if list_id is None or automation.activated_at is None:
            continue
        earlier = select(Enrollment.id).where(
            Enrollment.automation_id == automation.id,
            Enrollment.contact_id == ListMembership.contact_id,
        )
        if definition.reentry:
            earlier = earlier.where(
                or_(
                    Enrollment.status == E.ACTIVE,
                    Enrollment.created_at >= ListMembership.created_at,
                )
            )
        generation = (
            select(func.coalesce(func.max(Enrollment.generation), 0) + 1)
            .where(
                Enrollment.automation_id == automation.id,
                Enrollment.contact_id == ListMembership.contact_id,
            )
            .scalar_subquery()
        )
        source = (
            select(ListMembership.contact_id, generation)
            .join(Contact, Contact.id == ListMembership.contact_id)
            .where(
                ListMembership.list_id == list_id,
                ListMembership.created_at >= automation.activated_at,
                eligible(session, automation.workspace_id),
                ~earlier.exists(),
            )
        )
        rows = session.execute(source).all()
        if not rows:
            continue
        values = [
            {
                "automation_id": automation.id,
                "workspace_id": automation.workspace_id,
                "contact_id": contact_id,
                "generation": gen,
                "status": E.ACTIVE,
                "step_path": "0",
                "entered_step_at": now,
                "due_at": now,
                "created_at": now,
            }
            for contact_id, gen in rows
        ]
        for start in range(0, len(values), 1000):
            session.execute(
                _insert(session)(Enrollment).on_conflict_do_nothing(),
                values[start : start + 1000],
            )
        total += len(values)
    return total
