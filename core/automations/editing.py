"""Editing a saved automation: the whole definition (the JSON view), one step (the editor's
forms), a step added or removed, and the rules for an automation contacts have entered.

Before anyone has entered (a draft, or an active automation nobody joined yet) anything
valid may change. Once contacts are in it they stand at numbered steps ("2.then.0"), so:

- waits, subjects, templates (and sender names) and branch conditions may change; contacts
  keep their place, and those inside a wait whose length changed wait the new length from
  when they reached it;
- a step may be removed while the automation is paused: those standing on it move to the
  next step, and the steps after it (their contacts and their ledger rows) are renumbered;
- anything else (adding or moving steps, a step's kind, an update step's change, the
  trigger) is refused with a message that says so.

Removal needs a pause because workers walk contacts with the definition they read: a
paused automation is claimed by nobody, and a contact still leased by a worker refuses the
removal until that worker lets go (seconds; a lost worker's lease lapses)."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

from sqlalchemy import String, case, cast, func, literal, select, update
from sqlalchemy.orm import Session

from core.automations.engine import wait_until
from core.automations.model import (
    BranchStep,
    Definition,
    WaitStep,
    check_definition,
    dump_definition,
    next_path,
    parse_definition,
    step_at,
    step_kind,
    walk,
)
from core.automations.reshape import (
    RUNNING_RULES,
    EditRefused,
    align,
    human_path,
    refusal,
    same_step,
    with_step,
    with_step_added,
    without_step,
)
from core.automations.service import AutomationNotRunnable, definition_of, get_automation
from core.infra import clock
from core.infra.errors import NotFound, ValidationFailed
from core.infra.permissions import Actor
from core.models import Automation, Contact, Enrollment, Message, Workspace
from core.models.statuses import AutomationStatus, EnrollmentStatus

A, E = AutomationStatus, EnrollmentStatus

# --- saving --------------------------------------------------------------------------------


def has_entrants(session: Session, automation_id: int) -> bool:
    """Whether any contact has entered (so the running rules apply)."""
    return (
        session.scalar(
            select(Enrollment.id).where(Enrollment.automation_id == automation_id).limit(1)
        )
        is not None
    )


def update_automation(
    session: Session,
    actor: Actor,
    automation_id: int,
    data: Any,
    *,
    mapping: dict[str, str | None] | None = None,
) -> Automation:
    """Save an edited definition (validated against the workspace). Once contacts are in,
    only the changes the module docstring lists are taken; `mapping` (old step path → new,
    None for removed) says which step became which when the caller knows it."""
    actor.require("edit")
    automation = get_automation(session, actor, automation_id)
    new = check_definition(session, actor.workspace_id, data)
    if new.name != automation.name:
        taken = session.scalar(
            select(Automation.id).where(
                Automation.workspace_id == actor.workspace_id,
                Automation.name == new.name,
                Automation.id != automation.id,
            )
        )
        if taken is not None:
            raise ValidationFailed(f"An automation named {new.name!r} exists already.")
    if has_entrants(session, automation.id):
        old = definition_of(automation)
        _apply_running(session, automation, old, new, mapping)
    automation.name = new.name
    automation.definition = dump_definition(new)
    session.flush()
    return automation


def save_step(
    session: Session, actor: Actor, automation_id: int, path: str, step: dict[str, Any]
) -> Automation:
    """Replace the step at `path` (the editor's form for one step)."""
    automation = get_automation(session, actor, automation_id)
    data = with_step(automation.definition, path, step)
    return update_automation(
        session, actor, automation_id, data, mapping=_identity(automation.definition)
    )


def add_step(
    session: Session,
    actor: Actor,
    automation_id: int,
    prefix: str,
    index: int,
    step: dict[str, Any],
) -> Automation:
    """Insert a step (before anyone has entered: see the module docstring)."""
    actor.require("edit")
    automation = get_automation(session, actor, automation_id)
    if has_entrants(session, automation.id):
        raise EditRefused(
            "Steps cannot be added once contacts have entered the automation: they stand "
            "at numbered steps. Duplicate it as a new draft instead."
        )
    data = with_step_added(automation.definition, prefix, index, step)
    return update_automation(session, actor, automation_id, data)


def remove_step(session: Session, actor: Actor, automation_id: int, path: str) -> Automation:
    """Remove the step at `path`; those standing on it move to the next step."""
    actor.require("edit")
    automation = get_automation(session, actor, automation_id)
    definition = definition_of(automation)
    step = step_at(definition, path)
    if step is None:
        raise ValidationFailed(f"There is no step {human_path(path)}.")
    if sum(1 for _ in walk(definition.steps)) == 1:
        raise EditRefused("An automation needs at least one step.")
    running = has_entrants(session, automation.id)
    if running and isinstance(step, BranchStep):
        raise EditRefused(
            "A branch cannot be removed once contacts have entered the automation: some "
            "may be inside its arms. Remove the steps in its arms one by one instead."
        )
    data, mapping = without_step(automation.definition, path)
    return update_automation(session, actor, automation_id, data, mapping=mapping)


def duplicate_as_draft(session: Session, actor: Actor, automation_id: int) -> Automation:
    """A draft copy ("… (copy)") to change freely; the original keeps running."""
    from core.automations.service import create_automation

    automation = get_automation(session, actor, automation_id)
    data = copy.deepcopy(automation.definition)
    base = f"{automation.name} (copy)"
    name, n = base, 1
    names = set(
        session.scalars(
            select(Automation.name).where(Automation.workspace_id == actor.workspace_id)
        )
    )
    while name in names:
        n += 1
        name = f"{base} {n}"
    data["name"] = name[:200]
    return create_automation(session, actor, data, activate=False)


def enroll_for_test(session: Session, actor: Actor, automation_id: int, email: str) -> Enrollment:
    """The editor's test: enroll the contact with this email now, or say why not."""
    from core.automations.service import enroll_contact

    address = (email or "").strip().lower()
    contact = session.scalar(
        select(Contact).where(
            Contact.workspace_id == actor.workspace_id, func.lower(Contact.email) == address
        )
    )
    if contact is None:
        raise NotFound(f"No contact with the email {email.strip()!r} in this workspace.")
    enrollment = enroll_contact(session, actor, automation_id, contact.id)
    if enrollment is None:
        raise ValidationFailed(
            f"{contact.email} was not enrolled: only subscribed contacts can enter, and only "
            "once unless the automation allows re-entry."
        )
    return enrollment


def _identity(data: dict[str, Any]) -> dict[str, str | None]:
    return {path: path for path, _ in walk(parse_definition(data).steps)}


def _apply_running(
    session: Session,
    automation: Automation,
    old: Definition,
    new: Definition,
    mapping: dict[str, str | None] | None,
) -> None:
    """Check `new` against the running rules and move what has to move with it."""
    if old.trigger.model_dump(exclude={"list_id"}) != new.trigger.model_dump(exclude={"list_id"}):
        raise EditRefused(refusal(old, new))
    if mapping is None:
        match = align(old.steps, new.steps, "", "")
        if match is None:
            raise EditRefused(refusal(old, new))
        mapping = match.mapping
    else:
        _check_mapping(old, new, mapping)
    moved = {o: n for o, n in mapping.items() if n != o}
    if moved:
        _renumber(session, automation, old, new, mapping)
    for old_path, new_path in mapping.items():
        if new_path is None:
            continue
        before, after = step_at(old, old_path), step_at(new, new_path)
        if (
            isinstance(before, WaitStep)
            and isinstance(after, WaitStep)
            and not same_step(before, after)
        ):
            _rewait(session, automation.id, new_path, before, after)


def _check_mapping(old: Definition, new: Definition, mapping: dict[str, str | None]) -> None:
    for old_path, old_step in walk(old.steps):
        new_path = mapping.get(old_path, old_path)
        if new_path is None:
            continue
        new_step = step_at(new, new_path)
        if new_step is None or step_kind(new_step) != step_kind(old_step):
            raise EditRefused(RUNNING_RULES)
        if step_kind(old_step) in ("update", "exit") and not same_step(old_step, new_step):
            raise EditRefused(
                "An update step cannot change once contacts have entered the automation: "
                "remove it (while paused) or duplicate the automation as a new draft."
            )
    kept = {p for p in mapping.values() if p is not None}
    if any(path not in kept for path, _ in walk(new.steps)):
        raise EditRefused(refusal(old, new))


def _renumber(
    session: Session,
    automation: Automation,
    old: Definition,
    new: Definition,
    mapping: dict[str, str | None],
) -> None:
    """Move contacts and ledger rows to the new step numbers; those on a removed step go
    on to the next one. Paused, with no contact held by a worker (module docstring)."""
    if automation.status != A.PAUSED:
        raise AutomationNotRunnable(
            "Pause the automation before removing a step: contacts are moved off it only "
            "while no worker is walking them."
        )
    now = clock.now()
    base = select(Enrollment.id).where(
        Enrollment.automation_id == automation.id, Enrollment.status == E.ACTIVE
    )
    if session.get_bind().dialect.name == "postgresql":
        session.execute(base.with_for_update())  # a worker finishing a step waits for us
    held = session.scalar(
        select(Enrollment.id)
        .where(
            Enrollment.automation_id == automation.id,
            Enrollment.status == E.ACTIVE,
            Enrollment.leased_until > now,
        )
        .limit(1)
    )
    if held is not None:
        raise AutomationNotRunnable(
            "A worker is still moving contacts through this automation; try again in a minute."
        )
    changed = {o: n for o, n in mapping.items() if n is not None and n != o}
    removed = [o for o, n in mapping.items() if n is None]
    # Every old name moves to its new name plus a "~" first, then loses the "~": the
    # ledger's (enrollment, step) is unique, and no row may be moved twice.
    ours = Message.enrollment_id.in_(
        select(Enrollment.id).where(Enrollment.automation_id == automation.id)
    )
    if removed:
        session.execute(
            update(Message)
            .where(ours, Message.step_path.in_(removed))
            .values(step_path=literal("removed.") + cast(Message.id, String))
            .execution_options(synchronize_session=False)
        )
    if changed:
        session.execute(
            update(Message)
            .where(ours, Message.step_path.in_(list(changed)))
            .values(step_path=case(changed, value=Message.step_path) + "~")
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(Message)
            .where(ours, Message.step_path.like("%~"))
            .values(step_path=func.replace(Message.step_path, "~", ""))
            .execution_options(synchronize_session=False)
        )
    for old_path in removed:
        _move_on(session, automation, old, new, mapping, old_path)
    standing = Enrollment.automation_id == automation.id, Enrollment.status == E.ACTIVE
    if changed:
        session.execute(
            update(Enrollment)
            .where(*standing, Enrollment.step_path.in_(list(changed)))
            .values(step_path=case(changed, value=Enrollment.step_path))
            .execution_options(synchronize_session=False)
        )
    session.execute(
        update(Enrollment)
        .where(*standing, Enrollment.step_path.like("%~"))
        .values(step_path=func.replace(Enrollment.step_path, "~", ""))
        .execution_options(synchronize_session=False)
    )
    # The statements above bypass the identity map: what this session holds is stale.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, (Enrollment, Message)):
            session.expire(obj)


def _move_on(
    session: Session,
    automation: Automation,
    old: Definition,
    new: Definition,
    mapping: dict[str, str | None],
    old_path: str,
) -> None:
    """Contacts on a removed step go to the next step that stays (or finish). The
    automation is paused, and a pause holds time: they reach it as of the pause, so the
    resume's shift makes the next step due at the resume (a wait: counted from then)."""
    target: str | None = old_path
    while target is not None and mapping.get(target) is None:
        target = next_path(old, target)
    new_path = mapping[target] if target is not None else None
    now = clock.now()
    held = clock.as_utc(automation.paused_at) or now
    standing = Enrollment.automation_id == automation.id, Enrollment.status == E.ACTIVE
    if new_path is None:
        session.execute(
            update(Enrollment)
            .where(*standing, Enrollment.step_path == old_path)
            .values(status=E.FINISHED, reason="", finished_at=now, due_at=None, leased_until=None)
            .execution_options(synchronize_session=False)
        )
        return
    step = step_at(new, new_path)
    if not isinstance(step, WaitStep):
        session.execute(
            update(Enrollment)
            .where(*standing, Enrollment.step_path == old_path)
            .values(step_path=f"{new_path}~", entered_step_at=now, due_at=held)
            .execution_options(synchronize_session=False)
        )
        return
    rows = session.execute(
        select(Enrollment.id, func.coalesce(Contact.timezone, Workspace.timezone))
        .join(Contact, Contact.id == Enrollment.contact_id)
        .join(Workspace, Workspace.id == Enrollment.workspace_id)
        .where(*standing, Enrollment.step_path == old_path)
    ).all()
    values = [
        {
            "id": enrollment_id,
            "step_path": f"{new_path}~",  # the "~" goes once every step is renumbered
            "entered_step_at": now,
            "due_at": wait_until(step, held, timezone),
        }
        for enrollment_id, timezone in rows
    ]
    for start in range(0, len(values), 1000):
        session.execute(update(Enrollment), values[start : start + 1000])


def _rewait(
    session: Session, automation_id: int, path: str, before: WaitStep, after: WaitStep
) -> None:
    """Contacts inside a changed wait wait the new length from when they reached it (any
    time a pause added stays added)."""
    rows = session.execute(
        select(
            Enrollment.id,
            Enrollment.entered_step_at,
            Enrollment.due_at,
            func.coalesce(Contact.timezone, Workspace.timezone),
        )
        .join(Contact, Contact.id == Enrollment.contact_id)
        .join(Workspace, Workspace.id == Enrollment.workspace_id)
        .where(
            Enrollment.automation_id == automation_id,
            Enrollment.status == E.ACTIVE,
            Enrollment.step_path == path,
            Enrollment.due_at.is_not(None),
        )
    ).all()
    values = []
    for enrollment_id, entered, due, timezone in rows:
        entered_at = clock.as_utc(entered)
        shift: timedelta = wait_until(after, entered_at, timezone) - wait_until(
            before, entered_at, timezone
        )
        values.append({"id": enrollment_id, "due_at": (clock.as_utc(due) or entered_at) + shift})
    for start in range(0, len(values), 1000):
        session.execute(update(Enrollment), values[start : start + 1000])
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Enrollment):
            session.expire(obj)


__all__ = [
    "RUNNING_RULES",
    "EditRefused",
    "add_step",
    "duplicate_as_draft",
    "enroll_for_test",
    "has_entrants",
    "human_path",
    "remove_step",
    "save_step",
    "update_automation",
    "with_step",
    "with_step_added",
    "without_step",
]
