"""Sending in each contact's morning: the time-zone waves of a campaign.

A campaign with a `local_send_time` ("09:00") goes out when that time comes in each
recipient's zone (the workspace's zone for a contact without one, or with a name this
machine does not know). A zone's wave is the first moment at or after the campaign's start
(`scheduled_at`) at which the local time there is the chosen one, so every wave falls
within 24 hours of the start (25 across a change of the clocks).

Clock changes, as zoneinfo resolves them (fold=0):
- a time that does not exist that day (the spring-forward gap, 02:30 in Europe/Berlin on
  the last Sunday of March) is sent as late as the gap is long: 03:30 local, the same
  instant as 02:30 on the old offset;
- a time that happens twice (the autumn fold, 02:30 on the last Sunday of October) is
  sent at its first occurrence.

The snapshot dates the ledger (`message.due_at`) with one UPDATE per zone of the audience,
never row by row; the pipeline sends only rows that are due and beat's tick queues each
wave as it falls due (core.sending.pipeline).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import case, exists, func, literal, select, update
from sqlalchemy.orm import Session

from core.campaigns import audience as audiences
from core.infra import clock
from core.infra.errors import ValidationFailed
from core.infra.permissions import Actor
from core.models import Campaign, Contact, Message, Workspace
from core.models.statuses import MessageStatus

# Final without having been sent: counted apart from the wave's pending rows.
STOPPED = (MessageStatus.FAILED, MessageStatus.CANCELLED)

_HHMM = re.compile(r"^\s*([01]?\d|2[0-3])[:.h]([0-5]\d)\s*$")


def parse_local_time(value: str | time) -> str:
    """ "9:00", "09:00" or a `time` as the stored "HH:MM"; ValidationFailed otherwise."""
    if isinstance(value, time):
        return f"{value.hour:02d}:{value.minute:02d}"
    found = _HHMM.match(value or "")
    if not found:
        raise ValidationFailed(f"{value!r} is not a time of day: use HH:MM, such as 09:00.")
    return f"{int(found.group(1)):02d}:{found.group(2)}"


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def workspace_zone(session: Session, workspace_id: int) -> str:
    """The workspace's zone name (UTC when it names none this machine knows)."""
    name = session.scalar(select(Workspace.timezone).where(Workspace.id == workspace_id))
    return name if name and _zone(name) is not None else "UTC"


def wave_time(start: datetime, local_time: str, zone: str) -> datetime:
    """The first moment at or after `start` (aware) when it is `local_time` in `zone`, in UTC."""
    tz = _zone(zone) or ZoneInfo("UTC")
    hour, minute = (int(part) for part in parse_local_time(local_time).split(":"))
    start = clock.as_utc(start)
    day: date = start.astimezone(tz).date()
    for offset in range(3):  # today, tomorrow; a third day only past a skipped date
        local = datetime.combine(day + timedelta(days=offset), time(hour, minute), tz)
        moment = local.astimezone(UTC)
        if moment >= start:
            return moment
    raise AssertionError("unreachable: a local time recurs every day")


@dataclass
class Wave:
    """One wave: when it is due (UTC), the zones it covers, and its recipients' progress."""

    due_at: datetime
    zones: list[str]
    count: int = 0
    sent: int = 0
    failed: int = 0  # failed or cancelled: final without having been sent
    pending: int = 0

    def local(self, zone: str) -> str:
        """The wave's time in `zone`: "09:00 IST"."""
        moment = self.due_at.astimezone(_zone(zone) or UTC)
        return f"{moment:%H:%M} {moment.tzname()}"

    @property
    def done(self) -> bool:
        return self.count > 0 and self.pending == 0

    @property
    def label(self) -> str:
        """The zones with their local time, the first few by name: "09:00 IST Asia/Kolkata"."""
        shown = ", ".join(self.zones[:3])
        more = f" and {len(self.zones) - 3} more" if len(self.zones) > 3 else ""
        return f"{self.local(self.zones[0])} {shown}{more}" if self.zones else ""


@dataclass
class WavePlan:
    """Who falls in how many zones, and when the first and last waves go (the review)."""

    local_time: str
    start: datetime
    waves: list[Wave] = field(default_factory=list)

    @property
    def recipients(self) -> int:
        return sum(w.count for w in self.waves)

    @property
    def zones(self) -> int:
        return sum(len(w.zones) for w in self.waves)

    @property
    def first(self) -> Wave | None:
        return self.waves[0] if self.waves else None

    @property
    def last(self) -> Wave | None:
        return self.waves[-1] if self.waves else None


def _group(
    start: datetime, local_time: str, fallback: str, rows: list[tuple[Any, ...]]
) -> list[Wave]:
    """Waves from (zone or None, count, sent, failed) rows: zones due together are one wave."""
    by_zone: dict[str, list[int]] = {}
    for name, count, sent, failed in rows:
        zone = name if name and _zone(name) is not None else fallback
        totals = by_zone.setdefault(zone, [0, 0, 0])
        totals[0] += int(count or 0)
        totals[1] += int(sent or 0)
        totals[2] += int(failed or 0)
    waves: dict[datetime, Wave] = {}
    for zone, (count, sent, failed) in sorted(by_zone.items()):
        due = wave_time(start, local_time, zone)
        wave = waves.setdefault(due, Wave(due_at=due, zones=[]))
        wave.zones.append(zone)
        wave.count += count
        wave.sent += sent
        wave.failed += failed
    for wave in waves.values():
        wave.pending = wave.count - wave.sent - wave.failed
    return [waves[due] for due in sorted(waves)]


def plan_waves(
    session: Session,
    actor: Actor,
    audience: dict,
    local_time: str,
    start: datetime | None = None,
) -> WavePlan:
    """The waves an audience would be sent in from `start` (default now): one grouped query."""
    actor.require("read")
    local_time = parse_local_time(local_time)
    start = clock.as_utc(start) if start is not None else clock.now()
    plan = WavePlan(local_time=local_time, start=start)
    if audiences.is_empty(audience):
        return plan
    recipients = audiences.recipients_query(session, actor.workspace_id, audience)
    sub = recipients.add_columns(Contact.timezone).subquery()
    rows = session.execute(
        select(sub.c.timezone, func.count(), literal(0), literal(0)).group_by(sub.c.timezone)
    ).all()
    fallback = workspace_zone(session, actor.workspace_id)
    plan.waves = _group(start, local_time, fallback, [tuple(r) for r in rows])
    return plan


def date_ledger(session: Session, campaign: Campaign) -> int:
    """Set `due_at` on the campaign's undated ledger rows: one UPDATE per zone of the
    audience, then one for everyone in the workspace's zone; returns the number of waves.

    Called by the snapshot, in its transaction, before any batch is queued."""
    if not campaign.local_send_time:
        return 0
    start = clock.as_utc(campaign.scheduled_at) or clock.now()
    fallback = workspace_zone(session, campaign.workspace_id)
    in_ledger = exists().where(Message.campaign_id == campaign.id, Message.contact_id == Contact.id)
    zones = session.scalars(
        select(Contact.timezone)
        .where(
            Contact.workspace_id == campaign.workspace_id,
            Contact.timezone.is_not(None),
            in_ledger,
        )
        .distinct()
    ).all()
    dues: set[datetime] = set()
    for zone in zones:
        if not zone or _zone(zone) is None or zone == fallback:
            continue  # dated with the workspace's zone below
        due = wave_time(start, campaign.local_send_time, zone)
        dues.add(due)
        session.execute(
            update(Message)
            .where(
                Message.campaign_id == campaign.id,
                Message.due_at.is_(None),
                Message.contact_id.in_(
                    select(Contact.id).where(
                        Contact.workspace_id == campaign.workspace_id, Contact.timezone == zone
                    )
                ),
            )
            .values(due_at=due),
            execution_options={"synchronize_session": False},
        )
    due = wave_time(start, campaign.local_send_time, fallback)
    session.execute(
        update(Message)
        .where(Message.campaign_id == campaign.id, Message.due_at.is_(None))
        .values(due_at=due),
        execution_options={"synchronize_session": False},
    )
    dues.add(due)
    return len(dues)


def campaign_waves(session: Session, actor: Actor, campaign_id: int) -> list[Wave]:
    """A time-zone campaign's waves with their progress (empty for any other campaign):
    one grouped query over the ledger and its contacts' zones."""
    actor.require("read")
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.workspace_id != actor.workspace_id:
        return []
    if not campaign.local_send_time:
        return []
    start = clock.as_utc(campaign.scheduled_at) or clock.now()
    fallback = workspace_zone(session, campaign.workspace_id)
    has_ledger = session.scalar(select(exists().where(Message.campaign_id == campaign.id)))
    if not has_ledger:  # not started yet: the audience as it stands
        plan = plan_waves(session, actor, campaign.audience, campaign.local_send_time, start)
        return plan.waves
    rows = session.execute(
        select(
            Contact.timezone,
            func.count(),
            func.count(case((Message.status == MessageStatus.SENT, 1))),
            func.count(case((Message.status.in_(STOPPED), 1))),
        )
        .join(Contact, Contact.id == Message.contact_id)
        .where(Message.campaign_id == campaign.id)
        .group_by(Contact.timezone)
    ).all()
    return _group(start, campaign.local_send_time, fallback, [tuple(r) for r in rows])


def waves_summary(waves: list[Wave], now: datetime | None = None, paused: bool = False) -> str:
    """The waves in a line: "sending in waves: 3 of 7 sent, next 09:00 IST Asia/Kolkata"
    ("paused in waves: ..." while paused, "sent in 7 waves" at the end, "" without waves)."""
    if not waves:
        return ""
    now = now or clock.now()
    done = sum(1 for w in waves if w.done)
    if done == len(waves):
        return f"sent in {done} wave{'s' if done != 1 else ''}"
    upcoming = [w for w in waves if not w.done and w.due_at > now]
    text = f"{'paused' if paused else 'sending'} in waves: {done} of {len(waves)} sent"
    if upcoming:
        text += f", next {upcoming[0].label}"
    return text
