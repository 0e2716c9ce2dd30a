"""The engine: beat's pass that enrolls new list members, lets unsubscribed contacts
leave, and advances due enrollments through their steps.

Exactly once, as for campaigns: a send step first writes its ledger row (a `message`,
unique per enrollment and step) and commits, then claims it ("sending", committed), then
sends, then records the outcome and moves the enrollment on in one transaction. A worker
lost in between leaves a claimed row: the next pass sends it again only through the
outbox (which overwrites by message id) or marks it a possible duplicate (SES, SMTP), as
the campaign pipeline does (core.automations.delivery). Every other step changes state and
moves the enrollment in one transaction, so a crash repeats nothing.

Enrollments are claimed in batches with a lease (`leased_until`): `FOR UPDATE SKIP LOCKED`
on PostgreSQL so several workers share the due ones; SQLite has one writer anyway. A claim
that finds a full batch asks for one more pass task, so a second worker joins in. A batch
walks together, step by step: one round is a handful of statements for all of it (the
fence on the lease, the contacts, the moves, the ledger rows), never one per enrollment.
Each transaction that moves enrollments first renews their lease where the claim's token
still matches, so a worker whose lease lapsed and was taken over moves nothing.

This module runs its own transactions, so it takes a session factory.

About 710 lines on purpose: the claim, the fence and the batch's walk read as one state
machine over enrollments (the send steps' ledger work is in core.automations.delivery).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.automations import delivery
from core.automations.enrollment import enroll_from_lists
from core.automations.model import (
    BranchStep,
    Clicked,
    Definition,
    ExitStep,
    InSegment,
    Opened,
    SendStep,
    UpdateStep,
    WaitStep,
    arm_start,
    next_path,
    step_at,
)
from core.automations.service import _insert, definition_of, exit_unsubscribed
from core.automations.triggers import enroll_from_triggers
from core.infra import clock, jobs, metrics
from core.infra.config import settings
from core.infra.db import referenced
from core.mail.ratelimit import RateLimiter, acquire
from core.mail.transports import Transport
from core.models import (
    Automation,
    Contact,
    Enrollment,
    Event,
    ListMembership,
    Message,
    Suppression,
    Workspace,
)
from core.models.statuses import (
    AutomationStatus,
    ContactStatus,
    EnrollmentStatus,
    MessageStatus,
)
from core.segments import compile_rules, segment_condition
from core.sending.compose import (
    CONTACT_FIELDS,
    IDEMPOTENT_TRANSPORTS,
    get_transport_cached,
    limiter,
)

log = logging.getLogger(__name__)

A, E = AutomationStatus, EnrollmentStatus
# The pass task, by name (core does not import worker/): a busy pass asks for a helper.
ADVANCE_TASK = "worker.tasks_automations.advance"


def _lease() -> timedelta:
    """How long a claim holds an enrollment or a message in flight (the campaign
    pipeline's lease); each step renews it, so only a lost worker's claim lapses."""
    return timedelta(seconds=settings.send_lease_seconds)


MAX_STEPS_PER_PASS = 50  # a flow without waits still stops somewhere
RETRY_AFTER = timedelta(minutes=1)


@dataclass
class PassResult:
    enrolled: int = 0
    exited: int = 0
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    finished: int = 0
    errors: list[str] = field(default_factory=list)


def run_pass(
    sessions: sessionmaker[Session],
    *,
    batch: int = 500,
    transport: Transport | None = None,
    rate_limiter: RateLimiter | None = None,
    max_seconds: float | None = None,
    advance_only: bool = False,
) -> PassResult:
    """Beat's automation pass: enroll, let unsubscribed contacts go, advance what is due
    (batch after batch until nothing is due or `max_seconds` have passed). `advance_only`
    skips the first two (a helper pass asked for by a busy one)."""
    result = PassResult()
    if not advance_only:
        with sessions() as session:
            result.enrolled = enroll_from_lists(session)
            session.commit()
            result.enrolled += enroll_from_triggers(session)
            result.exited = exit_unsubscribed(session)
            session.commit()
    deadline = time.monotonic() + (max_seconds or settings.send_batch_seconds)
    helped = advance_only
    while time.monotonic() < deadline:
        claims = claim_due(sessions, batch)
        if not claims:
            break
        if len(claims) == batch and not helped:
            # More is due than one batch: a second pass on another worker shares it
            # (SKIP LOCKED keeps them apart). It asks for no further help itself.
            jobs.enqueue(None, ADVANCE_TASK, advance_only=True)
            helped = True
        result.claimed += len(claims)
        advance_many(sessions, claims, result, transport, rate_limiter)
    return result


def due_query(session: Session, now: datetime, batch: int) -> Select[int]:
    """Beat's scan: up to `batch` due, unleased enrollments of active automations, oldest
    first (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so workers take different ones)."""
    query = (
        select(Enrollment.id)
        .join(Automation, Automation.id == Enrollment.automation_id)
        .where(
            Enrollment.status == E.ACTIVE,
            Enrollment.due_at <= now,
            or_(Enrollment.leased_until.is_(None), Enrollment.leased_until < now),
            Automation.status == A.ACTIVE,
        )
        .order_by(Enrollment.due_at, Enrollment.id)
        .limit(batch)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Enrollment)
    return query


def claim_due(sessions: sessionmaker[Session], batch: int) -> list[tuple[int, int]]:
    """Lease up to `batch` due enrollments of active automations (committed); returns
    (id, token) pairs. The token (the claim count) fences the claim: a worker whose lease
    lapsed and was taken over finds another token and stops."""
    with sessions() as session:
        now = clock.now()
        ids = list(session.scalars(due_query(session, now, batch)))
        if not ids:
            session.commit()
            return []
        claimed = session.execute(
            update(Enrollment)
            .where(Enrollment.id.in_(ids))
            .values(leased_until=now + _lease(), attempts=Enrollment.attempts + 1)
            .returning(Enrollment.id, Enrollment.attempts)
        ).tuples()
        pairs = sorted(claimed)
        session.commit()
        return pairs


def advance(
    sessions: sessionmaker[Session],
    enrollment_id: int,
    token: int,
    result: PassResult,
    transport: Transport | None = None,
    rate_limiter: RateLimiter | None = None,
) -> None:
    """Walk one leased enrollment through its steps until a wait, the end, or an exit."""
    advance_many(sessions, [(enrollment_id, token)], result, transport, rate_limiter)


def advance_many(
    sessions: sessionmaker[Session],
    claims: list[tuple[int, int]],
    result: PassResult,
    transport: Transport | None = None,
    rate_limiter: RateLimiter | None = None,
) -> None:
    """Walk leased enrollments ((id, token) pairs) together until each reaches a wait, the
    end, or an exit."""
    with sessions() as session:
        _Batch(session, dict(claims), result, transport, rate_limiter).run()


@dataclass
class _State:
    """An enrollment as the batch holds it between statements."""

    id: int
    token: int
    automation_id: int
    workspace_id: int
    contact_id: int
    step_path: str
    entered_step_at: datetime
    due_at: datetime | None
    status: str = E.ACTIVE
    reason: str = ""
    finished_at: datetime | None = None
    moved: bool = False  # to write
    held: bool = False  # only its lease goes (paused, or a wait not over)
    goes_on: bool = False  # due again at once: walks on in the next round


class _Batch:
    def __init__(
        self,
        session: Session,
        tokens: dict[int, int],
        result: PassResult,
        transport: Transport | None,
        rate_limiter: RateLimiter | None,
    ) -> None:
        self.session = session
        self.tokens = tokens
        self.result = result
        self.transport = transport
        self.rate_limiter = rate_limiter
        self.steps = delivery.Steps(session)
        self._definitions: dict[int, tuple[Any, Definition]] = {}
        self._answers: dict[tuple[int, str], set[int]] = {}
        self._renewed = time.monotonic()  # the claim has just set the leases

    def run(self) -> None:
        s = self.session
        pending = dict(self.tokens)
        for _ in range(MAX_STEPS_PER_PASS):
            if not pending:
                break
            states = self._fence(pending)
            if not states:
                s.commit()
                return
            pending = self._round(states)
        s.commit()

    # --- one round: each enrollment walks on to its next send step, wait or end ------------

    def _round(self, states: list[_State]) -> dict[int, int]:
        """Walk the batch in memory through the steps that need no mail (waits that are
        over, branches, updates, exits) up to a send step each, then send them all."""
        s = self.session
        now = clock.now()
        automations = self._automations({st.automation_id for st in states})
        contacts = self._contacts(states)
        sends: list[tuple[_State, SendStep]] = []
        walking = []
        for st in states:
            automation = automations[st.automation_id]
            contact = contacts.get(st.contact_id)
            if automation.status != A.ACTIVE:
                st.moved = st.held = True  # paused: held where it is (the lease goes)
            elif contact is None or contact["status"] != ContactStatus.SUBSCRIBED:
                self._leave(st, E.EXITED, str(contact["status"]) if contact else "deleted", now)
            elif contact["suppressed"]:
                self._leave(st, E.EXITED, "suppressed", now)
            else:
                walking.append(st)
        for _ in range(MAX_STEPS_PER_PASS):
            branches: list[tuple[_State, BranchStep]] = []
            for st in walking:
                st.goes_on = False
                definition = self._definition(automations[st.automation_id])
                contact = contacts[st.contact_id]
                step = step_at(definition, st.step_path)
                if step is None:  # the step was removed: those at it move to the next one
                    self._move(st, definition, next_path(definition, st.step_path), contact, now)
                elif isinstance(step, WaitStep):
                    entered = clock.as_utc(st.entered_step_at)
                    if st.due_at is not None and clock.as_utc(st.due_at) == entered:
                        # Enrolled straight onto a wait (a date trigger's "until 09:00"):
                        # enrolling does not work out waits, so it starts here.
                        st.due_at = wait_until(step, entered, self._zone(st, contact))
                        if clock.as_utc(st.due_at) > now:
                            st.moved, st.held, st.goes_on = True, False, False
                            continue
                    if st.due_at is not None and clock.as_utc(st.due_at) > now:
                        st.moved = st.held = True  # not due yet (the lease goes)
                        continue
                    self._move(st, definition, next_path(definition, st.step_path), contact, now)
                elif isinstance(step, SendStep):
                    sends.append((st, step))
                elif isinstance(step, BranchStep):
                    branches.append((st, step))
                elif isinstance(step, UpdateStep):
                    self._update(st, step)
                    self._move(st, definition, next_path(definition, st.step_path), contact, now)
                elif isinstance(step, ExitStep):
                    self._leave(st, E.EXITED, "exit step", now)
            self._answers = {}  # each branch step's condition, for those at it now
            for st, step in branches:
                definition = self._definition(automations[st.automation_id])
                arm = "then" if self._holds_for(st, step, branches, contacts) else "else"
                target = arm_start(definition, st.step_path, arm)
                self._move(st, definition, target, contacts[st.contact_id], now)
            walking = [st for st in walking if st.goes_on]
            if not walking:
                break
        jobs = [
            delivery.Job(
                st.id,
                st.automation_id,
                st.workspace_id,
                st.step_path,
                step,
                contacts[st.contact_id],
            )
            for st, step in sends
        ]
        # 1. The moves so far and the ledger rows, committed before anything is sent.
        self._write([st for st in states if st.moved])
        delivery.write_ledger(s, jobs)
        s.commit()
        if jobs:
            self._send(jobs, {st.id: st for st, _ in sends}, automations, contacts)
        return {st.id: st.token for st in states if st.goes_on}

    # --- loading and writing ------------------------------------------------------------------

    def _renewal_due(self) -> bool:
        return time.monotonic() - self._renewed > settings.send_lease_seconds / 3

    def _fence(self, tokens: dict[int, int]) -> list[_State]:
        """Those still ours (the token matches, still active), locked for this transaction
        (row locks on PostgreSQL; SQLite's transaction holds the write lock): their state.
        Once a third of the lease has gone by, the lease is renewed too; otherwise they are
        only read, which spares PostgreSQL a row version per enrollment and round."""
        renew = self._renewal_due()
        by_token: dict[int, list[int]] = {}
        for enrollment_id, token in tokens.items():
            by_token.setdefault(token, []).append(enrollment_id)
        columns = (
            Enrollment.id,
            Enrollment.attempts,
            Enrollment.automation_id,
            Enrollment.workspace_id,
            Enrollment.contact_id,
            Enrollment.step_path,
            Enrollment.entered_step_at,
            Enrollment.due_at,
        )
        rows: list[Any] = []
        for token, ids in by_token.items():
            ours = (
                Enrollment.id.in_(ids),
                Enrollment.attempts == token,
                Enrollment.status == E.ACTIVE,
            )
            if renew:
                rows += self.session.execute(
                    update(Enrollment)
                    .where(*ours)
                    .values(leased_until=clock.now() + _lease())
                    .returning(*columns)
                    .execution_options(synchronize_session=False)
                ).all()
            else:
                query = select(*columns).where(*ours)
                if self.session.get_bind().dialect.name == "postgresql":
                    query = query.with_for_update(of=Enrollment)
                rows += self.session.execute(query).all()
        if renew:
            self._renewed = time.monotonic()
        return sorted((_State(*row) for row in rows), key=lambda st: st.id)

    def _automations(self, ids: set[int]) -> dict[int, Automation]:
        found = self.session.scalars(
            select(Automation)
            .where(Automation.id.in_(ids))
            .execution_options(populate_existing=True)
        )
        return {a.id: a for a in found}

    def _definition(self, automation: Automation) -> Definition:
        """Parsed once per batch (and again only if it was edited meanwhile)."""
        cached = self._definitions.get(automation.id)
        if cached is None or cached[0] is not automation.definition:
            cached = (automation.definition, definition_of(automation))
            self._definitions[automation.id] = cached
        return cached[1]

    def _contacts(self, states: list[_State]) -> dict[int, dict[str, Any]]:
        """The contacts' status, time zone, fields for templates and suppression."""
        ids = list({st.contact_id for st in states})
        suppressed = (
            select(Suppression.id)
            .where(
                Suppression.workspace_id == Contact.workspace_id,
                Suppression.email == Contact.email,
            )
            .exists()
        )
        columns = [getattr(Contact, name) for name in CONTACT_FIELDS]
        rows = self.session.execute(
            select(
                Contact.id,
                Contact.status,
                Contact.timezone,
                suppressed.label("suppressed"),
                *columns,
            ).where(Contact.id.in_(ids))
        )
        return {r.id: dict(r._mapping) for r in rows}

    def _write(self, states: list[_State]) -> None:
        """The states' new values (each has been fenced in this transaction); the lease goes
        unless it walks on at once. One UPDATE per distinct set of values: a batch that
        moved together (the usual case) is one statement."""
        lease = clock.now() + _lease()
        held = [st.id for st in states if st.held]
        if held:
            self.session.execute(
                update(Enrollment)
                .where(Enrollment.id.in_(held))
                .values(leased_until=None)
                .execution_options(synchronize_session=False)
            )
        groups: dict[tuple[Any, ...], list[int]] = {}
        for st in states:
            if st.held:
                continue
            values = (
                st.status,
                st.reason,
                st.step_path,
                st.entered_step_at,
                st.due_at,
                st.finished_at,
                lease if st.goes_on else None,
            )
            groups.setdefault(values, []).append(st.id)
        for values, ids in groups.items():
            status, reason, path, entered, due, finished, leased = values
            self.session.execute(
                update(Enrollment)
                .where(Enrollment.id.in_(ids))
                .values(
                    status=status,
                    reason=reason,
                    step_path=path,
                    entered_step_at=entered,
                    due_at=due,
                    finished_at=finished,
                    leased_until=leased,
                )
                .execution_options(synchronize_session=False)
            )

    # --- moving ------------------------------------------------------------------------------

    def _leave(self, st: _State, status: EnrollmentStatus, reason: str, now: datetime) -> None:
        """Finished or exited (`now`: the round's, so those leaving together share one
        UPDATE)."""
        st.status = status
        st.reason = reason
        st.finished_at = now
        st.due_at = None
        st.moved = True
        st.goes_on = False
        if status == E.FINISHED:
            self.result.finished += 1

    def _move(
        self,
        st: _State,
        definition: Definition,
        path: str | None,
        contact: dict[str, Any],
        now: datetime,
    ) -> None:
        if path is None:
            self._leave(st, E.FINISHED, "", now)
            return
        st.step_path = path
        st.entered_step_at = now
        step = step_at(definition, path)
        if isinstance(step, WaitStep):
            st.due_at = wait_until(step, now, self._zone(st, contact))
        else:
            st.due_at = now
        st.moved = True
        st.goes_on = clock.as_utc(st.due_at) <= now

    def _zone(self, st: _State, contact: dict[str, Any]) -> str:
        """until_time's zone: the contact's own, else the workspace's (issue 18)."""
        return contact["timezone"] or referenced(self.session, Workspace, st.workspace_id).timezone

    # --- steps -------------------------------------------------------------------------------

    def _holds_for(
        self,
        st: _State,
        step: BranchStep,
        branches: list[tuple[_State, BranchStep]],
        contacts: dict[int, dict[str, Any]],
    ) -> bool:
        """Whether the branch's condition holds for `st`; answered for every enrollment at
        the same branch step at once (a few queries per step, not per enrollment)."""
        key = (st.automation_id, st.step_path)
        answers = self._answers.get(key)
        if answers is None:
            same = [other for other, _ in branches if (other.automation_id, other.step_path) == key]
            answers = self._evaluate(step, same)
            self._answers[key] = answers
        return st.id in answers

    def _evaluate(self, step: BranchStep, states: list[_State]) -> set[int]:
        """The enrollments (of `states`, all at `step`) for which its condition holds."""
        s = self.session
        condition = step.branch.if_
        if isinstance(condition, (Opened, Clicked)):
            ref = condition.opened if isinstance(condition, Opened) else condition.clicked
            ids = [st.id for st in states]
            if ref == "previous":
                query = (
                    select(Message.enrollment_id, func.max(Message.id))
                    .where(Message.enrollment_id.in_(ids))
                    .group_by(Message.enrollment_id)
                )
            else:
                query = select(Message.enrollment_id, Message.id).where(
                    Message.enrollment_id.in_(ids), Message.step_path == ref
                )
            message_of: dict[int, int] = {
                mid: eid for eid, mid in s.execute(query).tuples() if eid is not None
            }
            if not message_of:
                return set()
            kind = "open" if isinstance(condition, Opened) else "click"
            events = select(Event.message_id).where(
                Event.message_id.in_(list(message_of)), Event.type == kind
            )
            if kind == "open":
                events = events.where(Event.is_machine.is_(False))
            if isinstance(condition, Clicked) and condition.url_contains:
                events = events.where(Event.url.contains(condition.url_contains, autoescape=True))
            return {message_of[mid] for mid in s.scalars(events.distinct()) if mid is not None}
        workspace_id = states[0].workspace_id
        if isinstance(condition, InSegment):
            where = segment_condition(s, workspace_id, condition.segment_id)
        else:
            where = compile_rules(s, workspace_id, condition.model_dump())
        by_contact: dict[int, list[int]] = {}
        for st in states:
            by_contact.setdefault(st.contact_id, []).append(st.id)
        matching = s.scalars(select(Contact.id).where(Contact.id.in_(list(by_contact)), where))
        return {eid for cid in matching for eid in by_contact[cid]}

    def _update(self, st: _State, step: UpdateStep) -> None:
        s = self.session
        spec = step.update
        if spec.add_list is not None and spec.list_id is not None:
            s.execute(
                _insert(s)(ListMembership)
                .values(list_id=spec.list_id, contact_id=st.contact_id, created_at=clock.now())
                .on_conflict_do_nothing()
            )
        elif spec.remove_list is not None and spec.list_id is not None:
            s.execute(
                ListMembership.__table__.delete().where(
                    ListMembership.list_id == spec.list_id,
                    ListMembership.contact_id == st.contact_id,
                )
            )
        elif spec.set_field is not None:
            contact = referenced(s, Contact, st.contact_id)
            if spec.set_field in ("first_name", "last_name", "company", "city", "country", "phone"):
                setattr(contact, spec.set_field, "" if spec.value is None else str(spec.value))
            else:
                contact.custom_fields = {
                    **(contact.custom_fields or {}),
                    spec.set_field: spec.value,
                }
            s.flush()

    def _send(
        self,
        jobs: list[delivery.Job],
        states: dict[int, _State],
        automations: dict[int, Automation],
        contacts: dict[int, dict[str, Any]],
    ) -> None:
        """The send steps, chunk by chunk: wait for the send slots, claim (committed),
        build and send, then record and move the enrollments on (committed)."""
        s = self.session
        transport = self.transport or get_transport_cached()
        by_workspace: dict[int, list[delivery.Job]] = {}
        for job in jobs:
            by_workspace.setdefault(job.workspace_id, []).append(job)
        for workspace_id, group in by_workspace.items():
            workspace = referenced(s, Workspace, workspace_id)
            rate = max(0.1, float(workspace.max_send_rate or 1.0))
            if transport.name in IDEMPOTENT_TRANSPORTS:
                # Small chunks at low rates keep every second under the limit.
                chunk = max(1, min(settings.send_batch_size, int(rate / 25)))
            else:
                chunk = 1  # at most one message per process is ever unrecorded
            s.commit()
            for start in range(0, len(group), chunk):
                part = group[start : start + chunk]
                acquire(
                    self.rate_limiter or limiter(), f"workspace:{workspace_id}", len(part), rate
                )
                for automation_id in {job.automation_id for job in part}:
                    self.steps.prepare(automations[automation_id], part)
                ledger = delivery.claim(s, part, settings.send_lease_seconds)
                s.commit()
                outcomes, updates = delivery.deliver(self.steps, transport, part, ledger)
                # 2. The outcomes and the moves, in one transaction.
                delivery.record(s, updates)
                still_ours = {
                    st.id
                    for st in self._fence(
                        {
                            j.enrollment_id: states[j.enrollment_id].token
                            # When the lease is renewed, it is renewed for those still
                            # waiting for their turn too.
                            for j in (group[start:] if self._renewal_due() else part)
                        }
                    )
                }
                now = clock.now()
                moved = []
                for outcome in outcomes:
                    st = states[outcome.job.enrollment_id]
                    if outcome.sent:
                        self.result.sent += 1
                    elif outcome.kind == "done" and outcome.error:
                        self.result.failed += 1
                    if st.id not in still_ours:
                        continue  # another worker took it over: it moves it on
                    if outcome.kind == "done":
                        definition = self._definition(automations[st.automation_id])
                        self._move(
                            st,
                            definition,
                            next_path(definition, st.step_path),
                            contacts[st.contact_id],
                            now,
                        )
                    elif outcome.kind == "retry":
                        self.result.errors.append(outcome.error)
                        st.due_at, st.moved, st.goes_on = now + RETRY_AFTER, True, False
                    else:  # busy: another worker has its message in flight right now
                        st.due_at, st.moved, st.goes_on = now + _lease(), True, False
                    moved.append(st)
                self._write(moved)
                s.commit()
                # The same counters as a campaign's chunk (mailwright_messages_total and the
                # workspace's sends against its limit), once the outcomes are committed.
                metrics.count_chunk(
                    transport.name,
                    workspace_id,
                    sum(1 for u in updates if u["sent"]),
                    sum(1 for u in updates if u["sent"] and u["error"]),
                    sum(1 for u in updates if u["status"] == MessageStatus.FAILED),
                    sum(1 for u in updates if u["status"] == MessageStatus.QUEUED),
                )


def wait_until(step: Any, entered: datetime, timezone: str | None) -> datetime:
    """When a wait that began at `entered` ends: its length, then (with until_time) on to
    that time of day in `timezone` (the contact's, else the workspace's; UTC when unknown)."""
    assert isinstance(step, WaitStep)
    due = entered + timedelta(minutes=step.wait.minutes_total)
    if not step.until:
        return due
    try:
        zone = ZoneInfo(timezone) if timezone else ZoneInfo("UTC")
    except (ValueError, KeyError):
        zone = ZoneInfo("UTC")
    hour, minute = (int(x) for x in step.until.split(":"))
    local = due.astimezone(zone)
    target = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if target < local:
        target = (local + timedelta(days=1)).replace(
            hour=hour, minute=minute, second=0, microsecond=0
        )
    return target.astimezone(clock.now().tzinfo or ZoneInfo("UTC"))
