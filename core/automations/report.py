"""Read models of automations for the Automations page and the Reports page: the list (status,
enrolled, active, sends in the last 30 days), per-step figures (waiting, sent, delivered,
opens, clicks, bounces, complaints, unsubscribes and their rates, as campaigns count them)
and sends per day per step.

Every query reaches an automation's messages through its enrollments (indexed by automation,
and the ledger by enrollment and step), never by scanning the message table."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, literal_column, select
from sqlalchemy.orm import Session

from core.automations.editing import human_path
from core.automations.model import (
    STANDARD_FIELDS,
    BranchStep,
    Clicked,
    InSegment,
    Opened,
    SendStep,
    UpdateStep,
    WaitStep,
    parse_definition,
    step_kind,
    walk,
)
from core.automations.service import get_automation
from core.infra import clock
from core.infra.permissions import Actor
from core.models import (
    Automation,
    ContactList,
    CustomField,
    Enrollment,
    Event,
    Message,
    Segment,
    Template,
)
from core.models.statuses import LEFT, EnrollmentStatus

E = EnrollmentStatus


def rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


@dataclass
class AutomationRow:
    id: int
    name: str
    status: str
    trigger: str
    steps: int
    enrolled: int
    active: int
    sent_30_days: int
    updated_at: datetime | None


@dataclass
class StepFigures:
    """One step's figures: `waiting` for every step; the rest for send steps."""

    path: str
    kind: str
    summary: str
    waiting: int = 0
    sent: int = 0
    failed: int = 0
    queued: int = 0
    delivered: int = 0
    delivered_estimated: bool = False
    bounces: int = 0
    complaints: int = 0
    unsubscribes: int = 0
    unique_opens: int = 0
    unique_clicks: int = 0

    @property
    def rates(self) -> dict[str, float | None]:
        return {
            "open_rate": rate(self.unique_opens, self.delivered),
            "click_rate": rate(self.unique_clicks, self.delivered),
            "click_to_open_rate": rate(self.unique_clicks, self.unique_opens),
            "bounce_rate": rate(self.bounces, self.sent),
            "complaint_rate": rate(self.complaints, self.delivered),
            "unsubscribe_rate": rate(self.unsubscribes, self.delivered),
        }


@dataclass
class DaySends:
    day: date
    path: str
    sent: int


@dataclass
class AutomationReport:
    id: int
    name: str
    status: str
    enrolled: int = 0
    active: int = 0
    finished: int = 0
    exited: int = 0
    exits: dict[str, int] = field(default_factory=dict)
    steps: list[StepFigures] = field(default_factory=list)
    per_day: list[DaySends] = field(default_factory=list)


# --- descriptions ----------------------------------------------------------------------------


def trigger_names(session: Session, workspace_id: int) -> dict[str, str]:
    """What a trigger refers to, by name: "segment:<id>" to the segment's name, a date
    field's path ("custom_fields.renewal", "created_at") to its label."""
    names = {
        f"segment:{sid}": name
        for sid, name in session.execute(
            select(Segment.id, Segment.name).where(Segment.workspace_id == workspace_id)
        )
    }
    names.update(
        (f"custom_fields.{key}", label)
        for key, label in session.execute(
            select(CustomField.key, CustomField.label).where(
                CustomField.workspace_id == workspace_id
            )
        )
    )
    names["created_at"] = "Date added"
    return names


def describe_trigger(trigger: dict[str, Any], names: dict[str, str] | None = None) -> str:
    """The trigger in a line; `names` (trigger_names) puts names where the definition
    holds ids and keys."""
    names = names or {}
    kind = trigger.get("type")
    if kind == "list_joined":
        return f"Joins the list “{trigger.get('list')}”"
    if kind == "segment_entered":
        sid = trigger.get("segment_id")
        name = names.get(f"segment:{sid}")
        return f"Enters the segment “{name}”" if name else f"Enters segment {sid}"
    if kind == "date_field":
        days = int(trigger.get("offset_days") or 0)
        when = (
            "on"
            if days == 0
            else f"{abs(days)} day{'s' if abs(days) != 1 else ''} "
            + ("before" if days < 0 else "after")
        )
        path = str(trigger.get("field"))
        label = names.get(path)
        text = f"{when} the date in “{label}”" if label else f"{when} the date in {path}"
        return text + (", every year" if trigger.get("yearly") else "")
    return "Enrolled by hand"


def describe_step(step: Any, templates: dict[int, str]) -> str:
    """A step in a line, as the editor's cards and the report's table name it."""
    if isinstance(step, SendStep):
        name = templates.get(step.send.template_id, f"template {step.send.template_id}")
        subject = f" · subject “{step.send.subject}”" if step.send.subject else ""
        return f"Send “{name}”{subject}"
    if isinstance(step, WaitStep):
        wait = step.wait
        amount, unit = next(
            (v, u)
            for v, u in ((wait.minutes, "minute"), (wait.hours, "hour"), (wait.days, "day"))
            if v is not None
        )
        text = f"Wait {amount} {unit}{'s' if amount != 1 else ''}"
        return text + (f", then until {step.until}" if step.until else "")
    if isinstance(step, BranchStep):
        return f"If {describe_condition(step.branch.if_)}"
    if isinstance(step, UpdateStep):
        change = step.update
        if change.add_list:
            return f"Add to the list “{change.add_list}”"
        if change.remove_list:
            return f"Remove from the list “{change.remove_list}”"
        return f"Set {change.set_field} to “{change.value}”"
    return "Exit"


def describe_condition(condition: Any) -> str:
    if isinstance(condition, Opened):
        ref = condition.opened
        return (
            "opened the previous email" if ref == "previous" else f"opened step {human_path(ref)}"
        )
    if isinstance(condition, Clicked):
        ref = condition.clicked
        what = "the previous email" if ref == "previous" else f"step {human_path(ref)}"
        url = f" (a link containing “{condition.url_contains}”)" if condition.url_contains else ""
        return f"clicked in {what}{url}"
    if isinstance(condition, InSegment):
        return f"in segment {condition.segment_id}"
    return "matches the rules"


def template_names(session: Session, workspace_id: int) -> dict[int, str]:
    return dict(
        session.execute(
            select(Template.id, Template.name).where(Template.workspace_id == workspace_id)
        ).all()
    )


@dataclass
class EditorOptions:
    """What the editor's forms offer: the workspace's templates, lists, segments, fields."""

    templates: dict[int, str]
    lists: list[str]
    segments: dict[int, str]
    fields: list[str]
    names: dict[str, str] = field(default_factory=dict)  # trigger_names


def editor_options(session: Session, actor: Actor) -> EditorOptions:
    actor.require("read")
    ws = actor.workspace_id
    return EditorOptions(
        templates=dict(
            session.execute(
                select(Template.id, Template.name)
                .where(Template.workspace_id == ws)
                .order_by(Template.name)
            ).all()
        ),
        lists=list(
            session.scalars(
                select(ContactList.name)
                .where(ContactList.workspace_id == ws)
                .order_by(ContactList.name)
            )
        ),
        segments=dict(
            session.execute(
                select(Segment.id, Segment.name)
                .where(Segment.workspace_id == ws)
                .order_by(Segment.name)
            ).all()
        ),
        fields=[*STANDARD_FIELDS]
        + list(
            session.scalars(
                select(CustomField.key)
                .where(CustomField.workspace_id == ws)
                .order_by(CustomField.key)
            )
        ),
        names=trigger_names(session, ws),
    )


# --- the list --------------------------------------------------------------------------------


def list_automations(session: Session, actor: Actor) -> list[AutomationRow]:
    """The workspace's automations by name, with enrolled, active and the last 30 days'
    sends."""
    actor.require("read")
    automations = list(
        session.scalars(
            select(Automation)
            .where(Automation.workspace_id == actor.workspace_id)
            .order_by(Automation.name)
        )
    )
    ids = [a.id for a in automations]
    if not ids:
        return []
    counts: dict[int, dict[str, int]] = {}
    for automation_id, status, n in session.execute(
        select(Enrollment.automation_id, Enrollment.status, func.count())
        .where(Enrollment.automation_id.in_(ids))
        .group_by(Enrollment.automation_id, Enrollment.status)
    ).tuples():
        counts.setdefault(automation_id, {})[status] = n
    since = clock.now() - timedelta(days=30)
    sent = dict(
        session.execute(
            select(Enrollment.automation_id, func.count())
            .join(Message, Message.enrollment_id == Enrollment.id)
            .where(
                Enrollment.automation_id.in_(ids),
                Message.status.in_(LEFT),
                Message.sent_at >= since,
            )
            .group_by(Enrollment.automation_id)
        ).all()
    )
    names = trigger_names(session, actor.workspace_id)
    rows = []
    for a in automations:
        by_status = counts.get(a.id, {})
        definition = a.definition or {}
        rows.append(
            AutomationRow(
                id=a.id,
                name=a.name,
                status=a.status,
                trigger=describe_trigger(definition.get("trigger") or {}, names),
                steps=sum(1 for _ in walk(parse_definition(definition).steps)),
                enrolled=sum(by_status.values()),
                active=by_status.get(E.ACTIVE, 0),
                sent_30_days=int(sent.get(a.id, 0)),
                updated_at=clock.as_utc(a.updated_at),
            )
        )
    return rows


# --- one automation --------------------------------------------------------------------------


def step_figures(session: Session, actor: Actor, automation_id: int) -> list[StepFigures]:
    """Per step, in document order: who is waiting there, and for a send step what was
    sent, delivered, opened (people, not image proxies), clicked, bounced and complained."""
    actor.require("read")
    automation = get_automation(session, actor, automation_id)
    definition = parse_definition(automation.definition)
    templates = template_names(session, actor.workspace_id)
    ours = select(Enrollment.id).where(Enrollment.automation_id == automation.id)
    waiting = dict(
        session.execute(
            select(Enrollment.step_path, func.count())
            .where(Enrollment.automation_id == automation.id, Enrollment.status == E.ACTIVE)
            .group_by(Enrollment.step_path)
        ).all()
    )
    ledger: dict[str, dict[str, int]] = {}
    for path, status, n in session.execute(
        select(Message.step_path, Message.status, func.count())
        .where(Message.enrollment_id.in_(ours))
        .group_by(Message.step_path, Message.status)
    ).tuples():
        ledger.setdefault(str(path), {})[status] = n
    events: dict[str, dict[str, int]] = {}
    query = (
        select(Message.step_path, Event.type, func.count(func.distinct(Event.message_id)))
        .join(Event, Event.message_id == Message.id)
        .where(
            Message.enrollment_id.in_(ours),
            Event.type.in_(("delivered", "open", "click", "bounce", "complaint", "unsubscribe")),
            (Event.type != "open") | Event.is_machine.is_(False),
        )
        .group_by(Message.step_path, Event.type)
    )
    for path, type_, n in session.execute(query).tuples():
        events.setdefault(str(path), {})[type_] = n
    bounced_sent = dict(
        session.execute(
            select(Message.step_path, func.count(func.distinct(Event.message_id)))
            .join(Event, Event.message_id == Message.id)
            .where(
                Message.enrollment_id.in_(ours),
                Event.type == "bounce",
                Message.status.in_(LEFT),
            )
            .group_by(Message.step_path)
        ).all()
    )
    out = []
    for path, step in walk(definition.steps):
        fig = StepFigures(
            path, step_kind(step), describe_step(step, templates), int(waiting.get(path, 0))
        )
        if isinstance(step, SendStep):
            by_status, ev = ledger.get(path, {}), events.get(path, {})
            fig.sent = sum(by_status.get(s, 0) for s in LEFT)
            fig.failed = by_status.get("failed", 0)
            fig.queued = sum(by_status.get(s, 0) for s in ("queued", "sending", "held"))
            fig.bounces = ev.get("bounce", 0)
            fig.complaints = ev.get("complaint", 0)
            fig.unsubscribes = ev.get("unsubscribe", 0)
            fig.unique_opens = ev.get("open", 0)
            fig.unique_clicks = ev.get("click", 0)
            if ev.get("delivered"):
                fig.delivered = ev["delivered"]
            elif fig.sent:  # no delivery reports (outbox, SMTP): sent and not bounced
                fig.delivered = max(fig.sent - int(bounced_sent.get(path, 0)), 0)
                fig.delivered_estimated = True
        out.append(fig)
    return out


def _day_bucket(session: Session):
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc("day", func.timezone("UTC", Message.sent_at))
    return func.strftime("%Y-%m-%d", Message.sent_at)


def _as_day(value: Any) -> date:
    if isinstance(value, datetime):
        return (value if value.tzinfo is None else value.astimezone(UTC)).date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def sends_per_day(
    session: Session, actor: Actor, automation_id: int, days: int = 30
) -> list[DaySends]:
    """Mails sent per UTC day and step over the last `days` days, oldest first."""
    actor.require("read")
    automation = get_automation(session, actor, automation_id)
    since = clock.now() - timedelta(days=days)
    bucket = _day_bucket(session).label("day")
    rows = session.execute(
        select(bucket, Message.step_path, func.count())
        .join(Enrollment, Enrollment.id == Message.enrollment_id)
        .where(
            Enrollment.automation_id == automation.id,
            Message.status.in_(LEFT),
            Message.sent_at >= since,
        )
        .group_by(literal_column("day"), Message.step_path)
    ).tuples()
    out = [DaySends(_as_day(day), str(path), int(n)) for day, path, n in rows]
    return sorted(out, key=lambda d: (d.day, d.path))


def automation_report(
    session: Session, actor: Actor, automation_id: int, days: int = 30
) -> AutomationReport:
    """Everything the Reports page shows of one automation."""
    actor.require("read")
    automation = get_automation(session, actor, automation_id)
    report = AutomationReport(automation.id, automation.name, automation.status)
    for status, reason, n in session.execute(
        select(Enrollment.status, Enrollment.reason, func.count())
        .where(Enrollment.automation_id == automation.id)
        .group_by(Enrollment.status, Enrollment.reason)
    ).tuples():
        report.enrolled += n
        if status == E.ACTIVE:
            report.active += n
        elif status == E.FINISHED:
            report.finished += n
        else:
            report.exited += n
            report.exits[reason or "exited"] = report.exits.get(reason or "exited", 0) + n
    report.steps = step_figures(session, actor, automation.id)
    report.per_day = sends_per_day(session, actor, automation.id, days)
    return report
