"""The send steps of a batch of enrollments: ledger rows, claim, compose, send, record.

The campaign pipeline's order, for many enrollments at once: (1) the ledger rows (a
`message` unique per enrollment and step) are committed by the caller before anything is
sent; (2) a chunk is claimed ("sending", committed); (3) each message is built and handed
to the transport, with no transaction open; (4) the outcomes are recorded and the
enrollments move on in one transaction. The outbox overwrites by message id, so its chunks
are large; SES and SMTP cannot be asked whether a message left, so there a chunk is one
message, and at most one per worker process is ever unrecorded (sent again after a crash
and marked a possible duplicate).

What is the same for every message of a step (the compiled template, From and the fixed
headers) is prepared once per batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from email.utils import formatdate
from typing import Any

from sqlalchemy import String, and_, bindparam, cast, literal, or_, select, update
from sqlalchemy.orm import Session

from core.automations.model import SendStep
from core.automations.service import _insert
from core.content.rendering import (
    CompiledTemplate,
    MailContext,
    TemplateProblem,
    compile_template,
    render_for_contact,
)
from core.infra import clock
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
from core.mail.transports import Outgoing, Transport
from core.models import Automation, Event, Message, Template, Workspace
from core.models.statuses import POSSIBLE_DUPLICATE, MessageStatus
from core.sending.compose import IDEMPOTENT_TRANSPORTS

M = MessageStatus
DONE = (M.SENT, M.FAILED, M.CANCELLED)


@dataclass
class Job:
    """One enrollment at a send step: what the ledger row and the message need."""

    enrollment_id: int
    automation_id: int
    workspace_id: int
    step_path: str
    step: SendStep
    contact: dict[str, Any]  # id, email and the fields templates use


@dataclass
class Outcome:
    """What became of a job's message: "done" (sent or failed: move on), "retry" (due
    again later), or "busy" (another worker has it in flight under a live lease)."""

    job: Job
    kind: str
    sent: bool = False
    error: str = ""


def write_ledger(session: Session, jobs: list[Job]) -> None:
    """The ledger rows, one per job (a row that exists already stays as it is). The caller
    commits them before anything is sent."""
    if not jobs:
        return
    now = clock.now()
    # Core, not the ORM's bulk insert: a batch's rows in one executemany, cheaply.
    session.connection().execute(
        _insert(session)(Message.__table__).on_conflict_do_nothing(),
        [
            {
                "workspace_id": j.workspace_id,
                "campaign_id": None,
                "automation_id": j.automation_id,
                "enrollment_id": j.enrollment_id,
                "step_path": j.step_path,
                "contact_id": j.contact["id"],
                "email": j.contact["email"],
                "status": M.QUEUED,
                "queued_at": now,
            }
            for j in jobs
        ],
    )


class _Step:
    """A send step prepared once: compiled template, MIME builder, context."""

    def __init__(self, session: Session, automation: Automation, step: SendStep) -> None:
        workspace = referenced(session, Workspace, automation.workspace_id)
        template = referenced(session, Template, step.send.template_id)
        self.workspace_id = workspace.id
        self.automation_id = automation.id
        self.configuration_set = workspace.ses_configuration_set
        self.sender = workspace.from_email
        self.compiled: CompiledTemplate | None = None
        self.problem = ""
        try:
            self.compiled = compile_template(
                step.send.subject or template.subject or template.name,
                template.html,
                template.text,
            )
        except TemplateProblem as exc:
            self.problem = str(exc)
        self.context = MailContext(
            workspace.id, workspace.name, workspace.postal_address, automation.name
        )
        self.mime: MimeBuilder | None = None
        try:
            self.mime = MimeBuilder(
                sender=self.sender,
                sender_name=step.send.from_name or workspace.from_name,
                reply_to=workspace.reply_to,
                headers={
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                    "X-Mailwright-Automation": str(automation.id),
                },
            )
        except ValidationFailed as exc:
            self.problem = self.problem or str(exc)

    def outgoing(self, message_id: int, contact: dict[str, Any], date: str) -> Outgoing:
        """The message for one contact (TemplateProblem or ValidationFailed: it cannot be)."""
        if self.compiled is None or self.mime is None:
            raise ValidationFailed(self.problem)
        unsubscribe = tracking.unsubscribe_url(self.workspace_id, contact["id"], message_id)
        rendered = render_for_contact(
            self.compiled,
            contact,
            self.context,
            message_id=message_id,
            track_opens=True,
            track_clicks=True,
            unsubscribe_url=unsubscribe,
        )
        raw = self.mime.build(
            to=contact["email"],
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=f"<mw.a{self.automation_id}.{message_id}@{self.mime.domain}>",
            date=date,
            headers={"List-Unsubscribe": f"<{unsubscribe}>"},
            boundary=f"{message_id}_a{self.automation_id}",
        )
        return Outgoing(
            raw=raw,
            sender=self.sender,
            recipients=[contact["email"]],
            key=str(message_id),
            tags={"automation_id": str(self.automation_id), "message_id": str(message_id)},
            configuration_set=self.configuration_set,
        )


class Steps:
    """Prepared send steps by (automation, path), for one batch."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._prepared: dict[tuple[int, str], _Step] = {}

    def prepare(self, automation: Automation, jobs: list[Job]) -> None:
        """Prepare the jobs' steps of `automation` (reads the database: call it inside a
        transaction, so that sending later needs none)."""
        for job in jobs:
            key = (job.automation_id, job.step_path)
            if job.automation_id == automation.id and key not in self._prepared:
                self._prepared[key] = _Step(self.session, automation, job.step)

    def get(self, job: Job) -> _Step:
        return self._prepared[(job.automation_id, job.step_path)]


@dataclass
class _Ledger:
    id: int
    status: str
    lost: bool = False


def claim(session: Session, jobs: list[Job], lease_seconds: float) -> dict[int, _Ledger]:
    """Move the jobs' ledger rows to "sending" where no live worker holds them (the caller
    commits); by enrollment id: the rows claimed, and those already final (status kept)."""
    now = clock.now()
    wanted = {(j.enrollment_id, j.step_path) for j in jobs}
    found = session.execute(
        select(Message.id, Message.status, Message.enrollment_id, Message.step_path).where(
            Message.enrollment_id.in_([j.enrollment_id for j in jobs]),
            Message.step_path.in_({j.step_path for j in jobs}),
        )
    ).all()
    rows = [r for r in found if (r.enrollment_id, r.step_path) in wanted]
    by_id = {r.id: r for r in rows}
    claimed = set(
        session.scalars(
            update(Message)
            .where(
                Message.id.in_([r.id for r in rows if r.status not in DONE]),
                or_(
                    Message.status.in_((M.QUEUED, M.UNCERTAIN)),
                    and_(
                        Message.status == M.SENDING,
                        Message.updated_at < now - timedelta(seconds=lease_seconds),
                    ),
                ),
            )
            .values(status=M.SENDING, attempts=Message.attempts + 1, updated_at=now)
            .returning(Message.id)
        )
    )
    result: dict[int, _Ledger] = {}
    for mid, r in by_id.items():
        if r.status in DONE:
            result[r.enrollment_id] = _Ledger(mid, r.status)
        elif mid in claimed:
            # In flight with a worker that was lost: sent again, maybe a second time.
            result[r.enrollment_id] = _Ledger(mid, M.SENDING, lost=r.status == M.SENDING)
    return result


def deliver(
    steps: Steps,
    transport: Transport,
    jobs: list[Job],
    ledger: dict[int, _Ledger],
) -> tuple[list[Outcome], list[dict[str, Any]]]:
    """Build and send the claimed messages (their steps prepared: no database, and no
    transaction open, so other workers write meanwhile); the outcomes, and the message
    rows' new values for `record`."""
    outcomes: list[Outcome] = []
    updates: list[dict[str, Any]] = []
    date = formatdate(usegmt=True)
    for job in jobs:
        row = ledger.get(job.enrollment_id)
        if row is None:
            outcomes.append(Outcome(job, "busy"))
            continue
        if row.status in DONE:  # sent before a lost worker could move the enrollment on
            outcomes.append(Outcome(job, "done"))
            continue
        prepared = steps.get(job)
        try:
            outgoing = prepared.outgoing(row.id, job.contact, date)
        except (TemplateProblem, ValidationFailed) as exc:
            updates.append(_failed(row.id, str(exc)))
            outcomes.append(Outcome(job, "done", error=str(exc)))
            continue
        try:
            provider_id = transport.send(outgoing)
        except PermanentSendError as exc:
            updates.append(_failed(row.id, str(exc)))
            outcomes.append(Outcome(job, "done", error=str(exc)))
            continue
        except (TransientSendError, ThrottledSendError, TransportMisconfigured) as exc:
            updates.append(
                {"b_id": row.id, "status": M.QUEUED, "error": str(exc)[:2000], "sent": False}
            )
            outcomes.append(Outcome(job, "retry", error=str(exc)))
            continue
        error = ""
        if row.lost and transport.name not in IDEMPOTENT_TRANSPORTS:
            error = f"{POSSIBLE_DUPLICATE}: the worker was lost while this message was in flight"
        updates.append(
            {
                "b_id": row.id,
                "status": M.SENT,
                "error": error,
                "sent": True,
                "provider": provider_id,
                "contact_id": job.contact["id"],
                "automation_id": job.automation_id,
                "workspace_id": job.workspace_id,
                "step": job.step_path,
            }
        )
        outcomes.append(Outcome(job, "done", sent=True))
    return outcomes, updates


def _failed(message_id: int, reason: str) -> dict[str, Any]:
    return {"b_id": message_id, "status": M.FAILED, "error": reason[:2000], "sent": False}


def record(session: Session, updates: list[dict[str, Any]]) -> None:
    """The outcomes on the ledger rows and the "sent" events (the caller commits, with the
    enrollments' moves)."""
    if not updates:
        return
    now = clock.now()
    sent = [u for u in updates if u["sent"]]
    other = [u for u in updates if not u["sent"]]
    table = Message.__table__
    # The outbox's id is the ledger id's: those rows in one UPDATE, as the campaign's do.
    derived = [u["b_id"] for u in sent if not u["error"] and u["provider"] == f"outbox-{u['b_id']}"]
    if derived:
        session.execute(
            update(Message)
            .where(Message.id.in_(derived))
            .values(
                status=M.SENT,
                sent_at=now,
                updated_at=now,
                error="",
                provider_message_id=literal("outbox-") + cast(Message.id, String),
            )
            .execution_options(synchronize_session=False)
        )
    derived_ids = set(derived)
    if any(u["b_id"] not in derived_ids for u in sent):
        session.connection().execute(
            table.update()
            .where(table.c.id == bindparam("b_id"))
            .values(
                status=M.SENT,
                sent_at=now,
                updated_at=now,
                error=bindparam("b_error"),
                provider_message_id=bindparam("b_provider"),
            ),
            [
                {"b_id": u["b_id"], "b_error": u["error"], "b_provider": u["provider"]}
                for u in sent
                if u["b_id"] not in derived_ids
            ],
        )
    if sent:
        session.connection().execute(
            _insert(session)(Event.__table__).on_conflict_do_nothing(index_elements=["dedupe_key"]),
            [
                {
                    "workspace_id": u["workspace_id"],
                    "campaign_id": None,
                    "message_id": u["b_id"],
                    "contact_id": u["contact_id"],
                    "type": "sent",
                    "occurred_at": now,
                    "source": "own",
                    "data": {"automation_id": u["automation_id"], "step": u["step"]},
                    "dedupe_key": f"sent:{u['b_id']}",
                    "is_machine": False,
                }
                for u in sent
            ],
        )
    if other:
        session.connection().execute(
            table.update()
            .where(table.c.id == bindparam("b_id"))
            .values(status=bindparam("b_status"), error=bindparam("b_error"), updated_at=now),
            [{"b_id": u["b_id"], "b_status": u["status"], "b_error": u["error"]} for u in other],
        )
