"""Enrollment by trigger: beat's set-based pass that enrolls the members who joined an
active automation's list since it was activated (whichever way they joined).

Incremental: `Automation.trigger_checked_at` is the list trigger's high-water mark (when
the last pass looked). A pass reads only memberships made since the mark (index
`ix_list_membership_list_created`) and members whose contact changed since it (a
re-subscribe stamps `updated_at`: index `ix_contact_status_updated`), each less
ENROLL_OVERLAP, so it costs what changed, not how many members the list has."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import DateTime, Integer, String, func, literal, or_, select, union
from sqlalchemy.orm import Session

from core.automations.service import _insert, definition_of, eligible, mark_checked
from core.infra import clock
from core.models import Automation, Contact, Enrollment, ListMembership
from core.models.statuses import AutomationStatus, ContactStatus, EnrollmentStatus

A, E = AutomationStatus, EnrollmentStatus

# A membership (or a status change) is seen after its transaction commits; rows are read
# this far behind the mark, so one committed up to this long after it was stamped is not
# missed (the unique key and the "no earlier enrollment" check make a second look harmless).
ENROLL_OVERLAP = timedelta(minutes=10)


def enroll_from_lists(session: Session) -> int:
    """Enroll every subscribed contact who joined an active automation's list since it was
    activated and has no enrollment in it yet (or, with reentry, none active and none since
    joining). One INSERT … SELECT per automation, over what changed since its mark; the
    unique key makes a second pass, or a second worker, add nothing. Flushes only."""
    total = 0
    automations = session.scalars(select(Automation).where(Automation.status == A.ACTIVE)).all()
    now = clock.now()
    for automation in automations:
        definition = definition_of(automation)
        list_id = getattr(definition.trigger, "list_id", None)
        if list_id is None or automation.activated_at is None:
            continue
        total += _enroll_members(session, automation, list_id, definition.reentry, now)
        mark_checked(session, automation, now)
    session.flush()
    return total


def _enroll_members(
    session: Session, automation: Automation, list_id: int, reentry: bool, now: datetime
) -> int:
    activated = clock.as_utc(automation.activated_at)
    assert activated is not None
    mark = clock.as_utc(automation.trigger_checked_at)
    since = activated if mark is None else max(activated, mark - ENROLL_OVERLAP)
    joined = ListMembership.created_at >= activated
    candidates = [ListMembership.list_id == list_id, joined]
    if since > activated:
        # Who may be new: members who joined since the mark, and members (since activation)
        # whose contact changed since it, a re-subscribe among them. (Before the first
        # mark, every member since activation is: no narrowing to do.)
        changed = union(
            select(ListMembership.contact_id).where(
                ListMembership.list_id == list_id, ListMembership.created_at >= since
            ),
            select(Contact.id)
            .join(ListMembership, ListMembership.contact_id == Contact.id)
            .where(
                Contact.status == ContactStatus.SUBSCRIBED,
                Contact.updated_at >= since,
                ListMembership.list_id == list_id,
                joined,
            ),
        )
        candidates.append(ListMembership.contact_id.in_(changed))
    earlier = select(Enrollment.id).where(
        Enrollment.automation_id == automation.id,
        Enrollment.contact_id == ListMembership.contact_id,
    )
    if reentry:
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
    stamp = literal(now, DateTime(timezone=True))
    source = (
        select(
            literal(automation.id, Integer),
            literal(automation.workspace_id, Integer),
            ListMembership.contact_id,
            generation,
            literal(E.ACTIVE.value, String),
            literal("0", String),
            stamp,
            stamp,
            stamp,
        )
        .join(Contact, Contact.id == ListMembership.contact_id)
        .where(
            *candidates,
            eligible(session, automation.workspace_id),
            ~earlier.exists(),
        )
    )
    inserted = session.execute(
        _insert(session)(Enrollment)
        .from_select(
            [
                "automation_id",
                "workspace_id",
                "contact_id",
                "generation",
                "status",
                "step_path",
                "entered_step_at",
                "due_at",
                "created_at",
            ],
            source,
        )
        .on_conflict_do_nothing()
        .execution_options(preserve_rowcount=True)  # INSERT … SELECT: not kept by default
    )
    return max(0, int(getattr(inserted, "rowcount", 0) or 0))
