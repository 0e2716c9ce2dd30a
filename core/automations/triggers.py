"""Segment and date triggers: beat's set-based, bounded checks that enroll contacts.

Segment (`segment_entered`): who is new is decided against `automation_match`, the
subscribed contacts that matched the segment when beat last looked. Activation fills it
(`remember_matches`), so contacts in the segment at that moment are never taken for
newcomers; each check enrolls the eligible contacts that match and are not remembered,
and forgets those that no longer match, so leaving and coming back is new again (enrolled
again only with `reentry`, as for lists). "Matching" means the segment's rules and
subscribed and not suppressed: a contact who re-subscribes while in the segment enters it.

Date (`date_field`): contacts whose date plus `offset_days` is today in the workspace's time
zone. One-off dates enroll once per date value; yearly ones once per anniversary (29
February counts on 28 February in other years). The occurrence is the enrollment's
`trigger_key` (the date value or this year's anniversary, ISO), so each is enrolled once
whatever `reentry` says, and never while the contact is still in a previous one. A look
covers every day since the last one (`trigger_checked_at`, or activation), today included,
so a beat pass missed over midnight (a worker down) skips nobody; at most CATCH_UP_DAYS
back, so a trigger idle for weeks does not send a month of late birthday mails at once.

Bounded: an automation is looked at once per AUTOMATION_TRIGGER_SECONDS, at most `batch`
contacts per look (one that hits the limit is looked at again on the next pass), and the
stage stops after `max_seconds`, oldest-looked-at automations first.
"""

from __future__ import annotations

import logging
import time as monotonic
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Integer,
    String,
    and_,
    delete,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.orm import Session

from core.automations.model import DateField, Definition, SegmentEntered
from core.automations.service import _insert, definition_of, eligible, mark_checked
from core.infra import clock
from core.infra.config import settings
from core.infra.errors import NotFound, ValidationFailed
from core.models import Automation, AutomationMatch, Contact, Enrollment, Workspace
from core.models.statuses import AutomationStatus, EnrollmentStatus

log = logging.getLogger(__name__)

A, E = AutomationStatus, EnrollmentStatus

TRIGGER_BATCH = 5000
CATCH_UP_DAYS = 7  # a date trigger looks back at most this many days before today


def zone_of(name: str | None) -> ZoneInfo:
    """A stored IANA zone name as a zone; UTC for none or one this machine does not know."""
    try:
        return ZoneInfo(name) if name else ZoneInfo("UTC")
    except (ValueError, KeyError):
        return ZoneInfo("UTC")


def enroll_from_triggers(
    session: Session, *, batch: int = TRIGGER_BATCH, max_seconds: float = 20.0
) -> int:
    """Beat's look at segment and date triggers whose turn it is; returns how many contacts
    were enrolled. Flushes only: the caller commits."""
    now = clock.now()
    due_before = now - timedelta(seconds=settings.automation_trigger_seconds)
    deadline = monotonic.monotonic() + max_seconds
    rows = session.scalars(
        select(Automation)
        .where(
            Automation.status == A.ACTIVE,
            or_(
                Automation.trigger_checked_at.is_(None),
                Automation.trigger_checked_at <= due_before,
            ),
        )
        .order_by(Automation.trigger_checked_at.is_not(None), Automation.trigger_checked_at)
    ).all()
    total = 0
    for automation in rows:
        if monotonic.monotonic() > deadline:
            break
        definition = definition_of(automation)
        trigger = definition.trigger
        try:
            if isinstance(trigger, SegmentEntered):
                enrolled, done = check_segment(session, automation, definition, trigger, batch)
            elif isinstance(trigger, DateField):
                enrolled, done = check_date(session, automation, definition, trigger, now, batch)
            else:
                continue
        except (NotFound, ValidationFailed) as exc:  # a segment deleted or no longer valid
            log.warning("automation %s: its trigger cannot be checked: %s", automation.id, exc)
            enrolled, done = 0, True
        total += enrolled
        if done:
            mark_checked(session, automation, now)
    session.flush()
    return total


# --- segments --------------------------------------------------------------------------------


def _matching(session: Session, workspace_id: int, segment_id: int) -> ColumnElement[bool]:
    from core.segments import segment_condition

    return and_(
        eligible(session, workspace_id), segment_condition(session, workspace_id, segment_id)
    )


def remember_matches(session: Session, automation: Automation, segment_id: int) -> int:
    """On activation: everyone the segment holds now is remembered, so not enrolled."""
    session.execute(delete(AutomationMatch).where(AutomationMatch.automation_id == automation.id))
    now = clock.now()
    source = select(
        literal(automation.id, Integer), Contact.id, literal(now, DateTime(timezone=True))
    ).where(_matching(session, automation.workspace_id, segment_id))
    result = session.execute(
        AutomationMatch.__table__.insert().from_select(
            ["automation_id", "contact_id", "since"], source
        )
    )
    automation.trigger_checked_at = now
    return int(getattr(result, "rowcount", 0) or 0)


def check_segment(
    session: Session,
    automation: Automation,
    definition: Definition,
    trigger: SegmentEntered,
    batch: int,
) -> tuple[int, bool]:
    """Enroll who newly matches, forget who left; (enrolled, finished looking)."""
    ws = automation.workspace_id
    matching = _matching(session, ws, trigger.segment_id)
    remembered = (
        select(AutomationMatch.contact_id)
        .where(
            AutomationMatch.automation_id == automation.id,
            AutomationMatch.contact_id == Contact.id,
        )
        .exists()
    )
    new = list(
        session.scalars(
            select(Contact.id).where(matching, ~remembered).order_by(Contact.id).limit(batch)
        )
    )
    still = select(Contact.id).where(Contact.id == AutomationMatch.contact_id, matching).exists()
    gone = list(
        session.scalars(
            select(AutomationMatch.contact_id)
            .where(AutomationMatch.automation_id == automation.id, ~still)
            .limit(batch)
        )
    )
    for start in range(0, len(gone), 1000):
        session.execute(
            delete(AutomationMatch).where(
                AutomationMatch.automation_id == automation.id,
                AutomationMatch.contact_id.in_(gone[start : start + 1000]),
            )
        )
    now = clock.now()
    for start in range(0, len(new), 1000):
        session.execute(
            _insert(session)(AutomationMatch).on_conflict_do_nothing(),
            [
                {"automation_id": automation.id, "contact_id": cid, "since": now}
                for cid in new[start : start + 1000]
            ],
        )
    enrolled = enroll_contacts(session, automation, definition, new)
    return enrolled, len(new) < batch and len(gone) < batch


# --- dates -----------------------------------------------------------------------------------


def occurrence(trigger: DateField, today: date) -> date:
    """The date value (one-off) or this year's anniversary (yearly) that fires today."""
    return today - timedelta(days=trigger.offset_days)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _custom_text(session: Session, key: str) -> ColumnElement[Any]:
    # `key` matched DateField's pattern ([a-z][a-z0-9_]*), so it may be inlined.
    if session.get_bind().dialect.name == "postgresql":
        return Contact.custom_fields.op("->>", return_type=String)(literal_column(f"'{key}'"))
    return func.json_extract(Contact.custom_fields, literal_column(f"'$.{key}'"), type_=String)


def _day_range(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants a local calendar day spans."""
    start = datetime.combine(day, time(), zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), zone).astimezone(UTC)
    return start, end


def date_condition(
    session: Session, workspace_id: int, trigger: DateField, anchor: date, zone: ZoneInfo
) -> ColumnElement[bool]:
    """Contacts whose date is `anchor` (one-off) or whose date's anniversary is `anchor`
    (yearly, not before the date itself)."""
    leap_day = anchor.month == 2 and anchor.day == 28 and not _is_leap(anchor.year)
    if trigger.field == "created_at":
        if not trigger.yearly:
            start, end = _day_range(anchor, zone)
            return and_(Contact.created_at >= start, Contact.created_at < end)
        first = session.scalar(
            select(func.min(Contact.created_at)).where(Contact.workspace_id == workspace_id)
        )
        if first is None:
            return false()
        ranges = []
        for year in range(clock.as_utc(first).year - 1, anchor.year + 1):
            days = [date(year, anchor.month, anchor.day)] if _valid(year, anchor) else []
            if leap_day and _is_leap(year):
                days.append(date(year, 2, 29))
            for day in days:
                start, end = _day_range(day, zone)
                ranges.append(and_(Contact.created_at >= start, Contact.created_at < end))
        return or_(*ranges) if ranges else false()
    raw = _custom_text(session, trigger.field.removeprefix("custom_fields."))
    dated = raw.like("____-__-__%")
    if not trigger.yearly:
        return and_(dated, func.substr(raw, 1, 10) == anchor.isoformat())
    month_day = func.substr(raw, 6, 5)
    month_days = [anchor.strftime("%m-%d")] + (["02-29"] if leap_day else [])
    return and_(
        dated,
        month_day.in_(month_days),
        func.substr(raw, 1, 4) <= f"{anchor.year:04d}",
    )


def _valid(year: int, anchor: date) -> bool:
    try:
        date(year, anchor.month, anchor.day)
    except ValueError:
        return False
    return True


def check_date(
    session: Session,
    automation: Automation,
    definition: Definition,
    trigger: DateField,
    now: datetime,
    batch: int,
) -> tuple[int, bool]:
    """Enroll the contacts of a date trigger for each day since its last look (or its
    activation), today included, at most CATCH_UP_DAYS back; (enrolled, finished looking).
    Each occurrence is its own key, so a day looked at twice enrolls nobody twice."""
    ws = automation.workspace_id
    workspace = session.get(Workspace, ws)
    zone = zone_of(workspace.timezone if workspace else None)
    today = now.astimezone(zone).date()
    last = clock.as_utc(automation.trigger_checked_at or automation.activated_at)
    first = today if last is None else last.astimezone(zone).date()
    first = min(today, max(first, today - timedelta(days=CATCH_UP_DAYS)))
    total, left = 0, batch
    for n in range((today - first).days + 1):
        anchor = occurrence(trigger, first + timedelta(days=n))
        key = anchor.isoformat()
        taken = (
            select(Enrollment.id)
            .where(
                Enrollment.automation_id == automation.id,
                Enrollment.contact_id == Contact.id,
                or_(Enrollment.trigger_key == key, Enrollment.status == E.ACTIVE),
            )
            .exists()
        )
        ids = list(
            session.scalars(
                select(Contact.id)
                .where(
                    eligible(session, ws),
                    date_condition(session, ws, trigger, anchor, zone),
                    ~taken,
                )
                .order_by(Contact.id)
                .limit(left)
            )
        )
        total += enroll_contacts(session, automation, definition, ids, key)
        left -= len(ids)
        if left <= 0:
            return total, False  # the rest on the next pass, from the same first day
    return total, True


# --- enrolling -------------------------------------------------------------------------------


def enroll_contacts(
    session: Session,
    automation: Automation,
    definition: Definition,
    contact_ids: Sequence[int],
    key: str | None = None,
) -> int:
    """Enroll these (eligible) contacts at the first step, each at its next generation: not
    while one is active in it; with a `key` (a date's occurrence) once per key; without one
    only the first time unless the automation allows reentry."""
    total = 0
    now = clock.now()
    for start in range(0, len(contact_ids), 1000):
        chunk = list(contact_ids[start : start + 1000])
        past: dict[int, list[tuple[int, str, str | None]]] = {}
        for cid, gen, status, tkey in session.execute(
            select(
                Enrollment.contact_id,
                Enrollment.generation,
                Enrollment.status,
                Enrollment.trigger_key,
            ).where(Enrollment.automation_id == automation.id, Enrollment.contact_id.in_(chunk))
        ):
            past.setdefault(cid, []).append((gen, status, tkey))
        values = []
        for cid in chunk:
            before = past.get(cid, [])
            if any(status == E.ACTIVE for _, status, _ in before):
                continue
            if key is not None and any(tkey == key for _, _, tkey in before):
                continue
            if key is None and before and not definition.reentry:
                continue
            values.append(
                {
                    "automation_id": automation.id,
                    "workspace_id": automation.workspace_id,
                    "contact_id": cid,
                    "generation": max((g for g, _, _ in before), default=0) + 1,
                    "status": E.ACTIVE,
                    "step_path": "0",
                    "entered_step_at": now,
                    "due_at": now,
                    "created_at": now,
                    "trigger_key": key,
                }
            )
        if values:
            session.execute(_insert(session)(Enrollment).on_conflict_do_nothing(), values)
            total += len(values)
    return total
