"""The engine: beat's pass that enrolls new list members, lets unsubscribed contacts
leave, and advances due enrollments through their steps.

Exactly once, as for campaigns: a send step first writes its ledger row (a `message`,
unique per enrollment and step) and commits, then claims it ("sending", committed), then
sends, then records the outcome and moves the enrollment on in one transaction. A worker
lost in between leaves a claimed row: the next pass sends it again only through the
outbox (which overwrites by message id) or marks it a possible duplicate (SES, SMTP), as
the campaign pipeline does. Every other step changes state and moves the enrollment in
one transaction, so a crash repeats nothing.

Enrollments are claimed in batches with a lease (`leased_until`): `FOR UPDATE SKIP LOCKED`
on PostgreSQL so several workers share the due ones; SQLite has one writer anyway. This
module runs its own transactions, so it takes a session factory.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import formatdate
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

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
from core.automations.service import _insert, definition_of, eligible, exit_unsubscribed
from core.content.rendering import (
    MailContext,
    TemplateProblem,
    compile_template,
    render_for_contact,
)
from core.infra import clock
from core.infra.config import settings
from core.infra.db import referenced
from core.infra.errors import (
    PermanentSendError,
    ThrottledSendError,
    TransientSendError,
    TransportMisconfigured,
    ValidationFailed,
)
from core.ingest import tracking
from core.mail.compose import MimeBuilder
from core.mail.ratelimit import RateLimiter, acquire
from core.mail.transports import Outgoing, Transport
from core.models import (
    Automation,
    Contact,
    Enrollment,
    Event,
    ListMembership,
    Message,
    Template,
    Workspace,
)
from core.models.statuses import (
    POSSIBLE_DUPLICATE,
    AutomationStatus,
    ContactStatus,
    EnrollmentStatus,
    MessageStatus,
)
from core.segments import compile_rules, segment_condition
from core.sending.compose import IDEMPOTENT_TRANSPORTS, get_transport_cached, limiter

log = logging.getLogger(__name__)

A, E, M = AutomationStatus, EnrollmentStatus, MessageStatus


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
) -> PassResult:
    """Beat's automation pass: enroll, let unsubscribed contacts go, advance what is due
    (batch after batch until nothing is due or `max_seconds` have passed)."""
    result = PassResult()
    with sessions() as session:
        result.enrolled = enroll_from_lists(session)
        result.exited = exit_unsubscribed(session)
        session.commit()
    deadline = time.monotonic() + (max_seconds or settings.send_batch_seconds)
    while time.monotonic() < deadline:
        ids = claim_due(sessions, batch)
        if not ids:
            break
        result.claimed += len(ids)
        for enrollment_id, token in ids:
            advance(sessions, enrollment_id, token, result, transport, rate_limiter)
    return result


def due_query(session: Session, now: datetime, batch: int) -> Select[tuple[int]]:
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
        if ids:
            session.execute(
                update(Enrollment)
                .where(Enrollment.id.in_(ids))
                .values(leased_until=now + _lease(), attempts=Enrollment.attempts + 1)
                .execution_options(synchronize_session=False)
            )
        claimed = (
            list(
                session.execute(
                    select(Enrollment.id, Enrollment.attempts).where(Enrollment.id.in_(ids))
                ).tuples()
            )
            if ids
            else []
        )
        session.commit()
        return sorted(claimed)


def advance(
    sessions: sessionmaker[Session],
    enrollment_id: int,
    token: int,
    result: PassResult,
    transport: Transport | None = None,
    rate_limiter: RateLimiter | None = None,
) -> None:
    """Walk one leased enrollment through its steps until a wait, the end, or an exit."""
    with sessions() as session:
        _Walker(session, enrollment_id, token, result, transport, rate_limiter).run()


class _Walker:
    def __init__(
        self,
        session: Session,
        enrollment_id: int,
        token: int,
        result: PassResult,
        transport: Transport | None,
        rate_limiter: RateLimiter | None,
    ) -> None:
        self.session = session
        self.enrollment_id = enrollment_id
        self.token = token
        self.result = result
        self.transport = transport
        self.rate_limiter = rate_limiter

    def run(self) -> None:
        s = self.session
        for _ in range(MAX_STEPS_PER_PASS):
            if not self._renew():
                s.commit()
                return  # finished meanwhile, or another worker took it over
            e = s.get(Enrollment, self.enrollment_id, populate_existing=True)
            if e is None or e.status != E.ACTIVE:
                s.commit()
                return
            automation = referenced(s, Automation, e.automation_id)
            if automation.status != A.ACTIVE:
                e.leased_until = None  # paused: held where it is
                s.commit()
                return
            contact = referenced(s, Contact, e.contact_id)
            if contact.status != ContactStatus.SUBSCRIBED:
                self._leave(e, E.EXITED, str(contact.status))
                s.commit()
                return
            ok = select(Contact.id).where(Contact.id == contact.id, eligible(s, e.workspace_id))
            if s.scalar(ok) is None:
                self._leave(e, E.EXITED, "suppressed")
                s.commit()
                return
            definition = definition_of(automation)
            step = step_at(definition, e.step_path)
            if step is None:  # the step was removed: those at it move to the next one
                self._move(e, definition, next_path(definition, e.step_path), contact)
                s.commit()
                continue
            now = clock.now()
            if isinstance(step, WaitStep):
                if e.due_at is not None and clock.as_utc(e.due_at) > now:
                    e.leased_until = None
                    s.commit()
                    return
                self._move(e, definition, next_path(definition, e.step_path), contact)
            elif isinstance(step, SendStep):
                if not self._send(e, automation, step, contact):
                    return  # committed: retried later
                self._move(e, definition, next_path(definition, e.step_path), contact)
            elif isinstance(step, BranchStep):
                arm = "then" if self._holds(e, definition, step, contact) else "else"
                self._move(e, definition, arm_start(definition, e.step_path, arm), contact)
            elif isinstance(step, UpdateStep):
                self._update(e, step, contact)
                self._move(e, definition, next_path(definition, e.step_path), contact)
            elif isinstance(step, ExitStep):
                self._leave(e, E.EXITED, "exit step")
            s.commit()
            if e.status != E.ACTIVE:
                return
        s.commit()

    def _renew(self) -> bool:
        """Extend our lease, if it is still ours (the token fences it)."""
        renewed = self.session.execute(
            update(Enrollment)
            .where(
                Enrollment.id == self.enrollment_id,
                Enrollment.attempts == self.token,
                Enrollment.status == E.ACTIVE,
            )
            .values(leased_until=clock.now() + _lease())
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(renewed, "rowcount", 0))

    # --- moving ------------------------------------------------------------------------------

    def _leave(self, e: Enrollment, status: EnrollmentStatus, reason: str) -> None:
        e.status = status
        e.reason = reason
        e.finished_at = clock.now()
        e.due_at = None
        e.leased_until = None
        if status == E.FINISHED:
            self.result.finished += 1

    def _move(
        self, e: Enrollment, definition: Definition, path: str | None, contact: Contact
    ) -> None:
        if path is None:
            self._leave(e, E.FINISHED, "")
            return
        now = clock.now()
        e.step_path = path
        e.entered_step_at = now
        step = step_at(definition, path)
        e.due_at = wait_until(step, now, contact.timezone) if isinstance(step, WaitStep) else now

    # --- steps -------------------------------------------------------------------------------

    def _holds(
        self, e: Enrollment, definition: Definition, step: BranchStep, contact: Contact
    ) -> bool:
        s = self.session
        condition = step.branch.if_
        if isinstance(condition, (Opened, Clicked)):
            ref = condition.opened if isinstance(condition, Opened) else condition.clicked
            query = select(Message.id).where(Message.enrollment_id == e.id)
            if ref == "previous":
                query = query.order_by(Message.id.desc()).limit(1)
            else:
                query = query.where(Message.step_path == ref)
            message_id = s.scalar(query)
            if message_id is None:
                return False
            kind = "open" if isinstance(condition, Opened) else "click"
            events = select(Event.id).where(Event.message_id == message_id, Event.type == kind)
            if kind == "open":
                events = events.where(Event.is_machine.is_(False))
            if isinstance(condition, Clicked) and condition.url_contains:
                events = events.where(Event.url.contains(condition.url_contains, autoescape=True))
            return s.scalar(events.limit(1)) is not None
        if isinstance(condition, InSegment):
            where = segment_condition(s, e.workspace_id, condition.segment_id)
        else:
            where = compile_rules(s, e.workspace_id, condition.model_dump())
        return s.scalar(select(Contact.id).where(Contact.id == contact.id, where)) is not None

    def _update(self, e: Enrollment, step: UpdateStep, contact: Contact) -> None:
        s = self.session
        spec = step.update
        if spec.add_list is not None and spec.list_id is not None:
            s.execute(
                _insert(s)(ListMembership)
                .values(list_id=spec.list_id, contact_id=contact.id, created_at=clock.now())
                .on_conflict_do_nothing()
            )
        elif spec.remove_list is not None and spec.list_id is not None:
            s.execute(
                ListMembership.__table__.delete().where(
                    ListMembership.list_id == spec.list_id,
                    ListMembership.contact_id == contact.id,
                )
            )
        elif spec.set_field is not None:
            if spec.set_field in ("first_name", "last_name", "company", "city", "country", "phone"):
                setattr(contact, spec.set_field, "" if spec.value is None else str(spec.value))
            else:
                contact.custom_fields = {
                    **(contact.custom_fields or {}),
                    spec.set_field: spec.value,
                }

    def _send(
        self, e: Enrollment, automation: Automation, step: SendStep, contact: Contact
    ) -> bool:
        """The send step's one message; True when it has an outcome (sent or failed), False
        when it must be tried again later (committed either way)."""
        s = self.session
        path = e.step_path
        # 1. The ledger row, committed before anything is sent.
        s.execute(
            _insert(s)(Message)
            .values(
                workspace_id=e.workspace_id,
                campaign_id=None,
                automation_id=automation.id,
                enrollment_id=e.id,
                step_path=path,
                contact_id=contact.id,
                email=contact.email,
                status=M.QUEUED,
                queued_at=clock.now(),
            )
            .on_conflict_do_nothing()
        )
        s.commit()
        message = s.scalars(
            select(Message).where(Message.enrollment_id == e.id, Message.step_path == path)
        ).one()
        if message.status in (M.SENT, M.FAILED, M.CANCELLED):
            return True  # sent before a lost worker could move the enrollment on
        transport = self.transport or get_transport_cached()
        lost = message.status == M.SENDING  # in flight with a worker that was lost
        message_id, contact_id, to = message.id, contact.id, contact.email
        workspace_id, automation_id = e.workspace_id, automation.id
        workspace = referenced(s, Workspace, workspace_id)
        rate = max(0.1, float(workspace.max_send_rate or 1.0))
        try:
            raw, sender = self._compose(message, workspace, automation, step, contact)
        except (TemplateProblem, ValidationFailed) as exc:
            self._fail(message_id, str(exc))
            return True
        outgoing = Outgoing(
            raw=raw,
            sender=sender,
            recipients=[to],
            key=str(message_id),
            tags={"automation_id": str(automation_id), "message_id": str(message_id)},
            configuration_set=workspace.ses_configuration_set,
        )
        # 2. The claim, committed: only one worker moves the row to "sending", and a row in
        # flight is taken over only once its lease has lapsed. No transaction stays open
        # while waiting for a send slot or the transport (SQLite has one writer).
        now = clock.now()
        claimed = s.execute(
            update(Message)
            .where(
                Message.id == message_id,
                or_(
                    Message.status.in_((M.QUEUED, M.UNCERTAIN)),
                    and_(Message.status == M.SENDING, Message.updated_at < now - _lease()),
                ),
            )
            .values(status=M.SENDING, attempts=Message.attempts + 1, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if not getattr(claimed, "rowcount", 0):
            e.due_at = now + _lease()  # another worker has it in flight right now
            e.leased_until = None
            s.commit()
            return False
        s.commit()
        acquire(self.rate_limiter or limiter(), f"workspace:{workspace_id}", 1, rate)
        # 3. Send.
        try:
            provider_id = transport.send(outgoing)
        except PermanentSendError as exc:
            self._fail(message_id, str(exc))
            return True
        except (TransientSendError, ThrottledSendError, TransportMisconfigured) as exc:
            s.execute(
                update(Message)
                .where(Message.id == message_id)
                .values(status=M.QUEUED, error=str(exc)[:2000], updated_at=clock.now())
            )
            e.due_at = clock.now() + RETRY_AFTER
            e.leased_until = None
            s.commit()
            self.result.errors.append(str(exc))
            return False
        # 4. The outcome, committed with the enrollment's move by the caller.
        now = clock.now()
        error = ""
        if lost and transport.name not in IDEMPOTENT_TRANSPORTS:
            error = f"{POSSIBLE_DUPLICATE}: the worker was lost while this message was in flight"
        s.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(
                status=M.SENT,
                sent_at=now,
                updated_at=now,
                provider_message_id=provider_id,
                error=error,
            )
        )
        s.execute(
            _insert(s)(Event)
            .values(
                workspace_id=workspace_id,
                campaign_id=None,
                message_id=message_id,
                contact_id=contact_id,
                type="sent",
                occurred_at=now,
                source="own",
                data={"automation_id": automation_id, "step": path},
                dedupe_key=f"sent:{message_id}",
                is_machine=False,
            )
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
        )
        self.result.sent += 1
        return True

    def _fail(self, message_id: int, reason: str) -> None:
        self.session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(status=M.FAILED, error=reason[:2000], updated_at=clock.now())
        )
        self.result.failed += 1

    def _compose(
        self,
        message: Message,
        workspace: Workspace,
        automation: Automation,
        step: SendStep,
        contact: Contact,
    ) -> tuple[bytes, str]:
        template = referenced(self.session, Template, step.send.template_id)
        subject = step.send.subject or template.subject or template.name
        compiled = compile_template(subject, template.html, template.text)
        unsubscribe = tracking.unsubscribe_url(workspace.id, contact.id, message.id)
        rendered = render_for_contact(
            compiled,
            contact,
            MailContext(workspace.id, workspace.name, workspace.postal_address, automation.name),
            message_id=message.id,
            track_opens=True,
            track_clicks=True,
            unsubscribe_url=unsubscribe,
        )
        sender = workspace.from_email
        mime = MimeBuilder(
            sender=sender,
            sender_name=step.send.from_name or workspace.from_name,
            reply_to=workspace.reply_to,
            headers={
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                "X-Mailwright-Automation": str(automation.id),
            },
        )
        raw = mime.build(
            to=contact.email,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=f"<mw.a{automation.id}.{message.id}@{mime.domain}>",
            date=formatdate(usegmt=True),
            headers={"List-Unsubscribe": f"<{unsubscribe}>"},
            boundary=f"{message.id}_a{automation.id}",
        )
        return raw, sender


def wait_until(step: Any, entered: datetime, timezone: str | None) -> datetime:
    """When a wait that began at `entered` ends: its length, then (with until_time) on to
    that time of day in the contact's time zone (UTC when the contact has none)."""
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
