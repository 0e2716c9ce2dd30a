"""The dashboard: the workspace's totals and trends (rollups plus live SQL beyond their
high-water mark), deliverability against SES's and Gmail's thresholds, recent and upcoming
campaigns."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, case, func, literal_column, or_, select
from sqlalchemy.orm import Session, aliased

from core.analytics.reports.campaign import campaign_figures, rate
from core.deliverability import (
    SES_BOUNCE_PAUSE,
    SES_BOUNCE_REVIEW,
    SES_COMPLAINT_PAUSE,
    SES_COMPLAINT_REVIEW,
)
from core.infra import clock
from core.infra.clock import as_utc
from core.infra.permissions import Actor
from core.models import Campaign, Contact, Event, Message, Workspace
from core.models.statuses import FINISHED, LEFT, CampaignStatus

# SES puts an account under review, then may pause sending, at these rates (one place:
# core.deliverability, whose guard weighs the same); Gmail asks bulk senders to stay under
# 0.3 % spam (we compare the complaint rate we can see).


GMAIL_SPAM_LIMIT = 0.003


CLOSE_TO_LIMIT = 0.8  # warn at 80 % of a threshold


@dataclass
class Threshold:
    name: str
    value: float | None
    limit: float
    kind: str  # "review", "pause" or "spam"

    @property
    def level(self) -> str:
        """ "ok", "close" (within 80 % of the limit) or "over"."""
        if self.value is None:
            return "ok"
        if self.value >= self.limit:
            return "over"
        return "close" if self.value >= self.limit * CLOSE_TO_LIMIT else "ok"


@dataclass
class Deliverability:
    sent: int
    bounces: int
    complaints: int
    bounce_rate: float | None
    complaint_rate: float | None
    thresholds: list[Threshold] = field(default_factory=list)

    @property
    def review_level(self) -> str:
        """Against SES's review levels: "ok", "close" (80 % of one: amber) or "over"."""
        levels = {t.level for t in self.thresholds if t.kind == "SES review"}
        return "over" if "over" in levels else "close" if "close" in levels else "ok"

    @property
    def warnings(self) -> list[str]:
        out = []
        for t in self.thresholds:
            if t.level != "ok":
                word = "over" if t.level == "over" else "close to"
                out.append(f"{t.name} {t.value:.2%} is {word} {t.kind} threshold {t.limit:.2%}.")
        return out


def deliverability(sent: int, bounces: int, complaints: int) -> Deliverability:
    """Bounce and complaint rates (over sent, as SES measures) against the known limits."""
    br, cr = rate(bounces, sent), rate(complaints, sent)
    return Deliverability(
        sent,
        bounces,
        complaints,
        br,
        cr,
        [
            Threshold("Bounce rate", br, SES_BOUNCE_REVIEW, "SES review"),
            Threshold("Bounce rate", br, SES_BOUNCE_PAUSE, "SES pause"),
            Threshold("Complaint rate", cr, SES_COMPLAINT_REVIEW, "SES review"),
            Threshold("Complaint rate", cr, SES_COMPLAINT_PAUSE, "SES pause"),
            Threshold("Complaint rate", cr, GMAIL_SPAM_LIMIT, "Gmail spam-rate"),
        ],
    )


@dataclass
class RecentCampaign:
    id: int
    name: str
    status: str
    started_at: datetime | None
    scheduled_at: datetime | None


@dataclass
class Dashboard:
    subscribed: int
    contacts: int
    subscribed_change_30d: int
    sent_30d: int
    sent_all_time: int
    avg_open_rate: float | None
    avg_click_rate: float | None
    rate_campaigns: int
    recent: list[RecentCampaign]
    upcoming: list[RecentCampaign]
    growth: list[dict[str, Any]]  # day, new_contacts, lost_contacts, cumulative_contacts
    health: Deliverability
    rollup_built_at: datetime | None  # None: every figure was counted live

    @property
    def has_rollups(self) -> bool:
        return self.rollup_built_at is not None


# Events that make a contact "lost" on their day (a hard bounce; any complaint or unsubscribe).
_LOST = or_(
    Event.type.in_(("unsubscribe", "complaint")),
    and_(Event.type == "bounce", Event.bounce_type == "hard"),
)


# Events a campaign's open and click rates depend on (bounces: an estimated delivery).
_RATE_EVENTS = ("delivered", "open", "click", "bounce")


def dashboard(
    session: Session,
    actor: Actor,
    rollup_path: Path | None = None,
    last_campaigns: int = 10,
    use_rollups: bool = True,
) -> Dashboard:
    """The landing page, right at any moment: the rollups up to their high-water mark plus
    live SQL over what lies beyond it.

    Events with an id above the mark are counted here, and so is the ledger of every
    campaign that is not finished or whose row changed since the build (its signature);
    a finished, unchanged campaign's sent count is the rollups'. Its open and click rates
    are the rollups' counts plus its first deliveries, opens and clicks beyond the mark;
    any other campaign's come from `campaign_figures`. Without rollups (or with
    `use_rollups=False`) everything is counted live."""
    from core.analytics import rollups

    actor.require("read")
    ws = actor.workspace_id
    today = clock.now().astimezone(UTC).date()
    d30, d90 = today - timedelta(days=29), today - timedelta(days=89)
    since30 = datetime.combine(d30, time(), UTC)
    since90 = datetime.combine(d90, time(), UTC)
    by_status = dict(
        session.execute(
            select(Contact.status, func.count())
            .where(Contact.workspace_id == ws)
            .group_by(Contact.status)
        ).all()
    )

    def campaigns(where: Any, order: Any) -> list[RecentCampaign]:
        rows = session.execute(
            select(
                Campaign.id,
                Campaign.name,
                Campaign.status,
                Campaign.started_at,
                Campaign.scheduled_at,
            )
            .where(Campaign.workspace_id == ws, where)
            .order_by(order)
            .limit(5)
        ).all()
        return [RecentCampaign(i, n, s, as_utc(a), as_utc(b)) for i, n, s, a, b in rows]

    recent = campaigns(Campaign.started_at.is_not(None), Campaign.started_at.desc())
    upcoming = campaigns(Campaign.status == CampaignStatus.SCHEDULED, Campaign.scheduled_at)

    roll = None
    if use_rollups:
        key = rollups.source_key(session.get_bind().engine.url)
        roll = rollups.dashboard_rollup(ws, key, d30, d90, rollup_path)
    through = roll.through if roll else 0
    # The driver's own cursor, as the builder reads them: the same text for `updated_at`.
    driver = session.connection().connection.driver_connection
    current = rollups.campaign_signatures(driver, ws)
    stable = {
        cid
        for cid, (status, sig) in current.items()
        if roll is not None and status in FINISHED and roll.signatures.get(cid, ("", ""))[1] == sig
    }

    sent_all, sent_30 = _live_sent(session, [c for c in current if c not in stable], since30)
    for cid in stable:
        total, recent_sent = roll.sent.get(cid, (0, 0)) if roll else (0, 0)
        sent_all, sent_30 = sent_all + total, sent_30 + recent_sent

    auto_all, auto_30 = _automation_sent(session, ws, since30)
    sent_all, sent_30 = sent_all + auto_all, sent_30 + auto_30

    bounces_30 = roll.bounces_30d if roll else 0
    complaints_30 = roll.complaints_30d if roll else 0
    for type_, n in session.execute(
        select(Event.type, func.count())
        .where(
            Event.workspace_id == ws,
            Event.id > through,
            Event.type.in_(("bounce", "complaint")),
            Event.occurred_at >= since30,
        )
        .group_by(Event.type)
    ).all():
        if type_ == "bounce":
            bounces_30 += n
        else:
            complaints_30 += n

    avg_open, avg_click, n_rates = _average_rates(
        session, actor, roll, stable, through, last_campaigns, use_rollups
    )
    lost = _lost_by_day(session, ws, roll, since90)
    added = _added_by_day(session, ws, since90)
    growth = _growth(sum(by_status.values()), added, lost, d90, today)
    change = sum(n for d, n in added.items() if d >= d30) - sum(
        n for d, n in lost.items() if d >= d30
    )
    return Dashboard(
        subscribed=by_status.get("subscribed", 0),
        contacts=sum(by_status.values()),
        subscribed_change_30d=change,
        sent_30d=sent_30,
        sent_all_time=sent_all,
        avg_open_rate=avg_open,
        avg_click_rate=avg_click,
        rate_campaigns=n_rates,
        recent=recent,
        upcoming=upcoming,
        growth=growth,
        health=deliverability(sent_30, bounces_30, complaints_30),
        rollup_built_at=roll.built_at if roll else None,
    )


def _live_sent(session: Session, campaign_ids: list[int], since30: datetime) -> tuple[int, int]:
    """Messages sent (or uncertain) by these campaigns: all time, and in the 30-day window.

    A message counts on its sending day, or its campaign's start day when it has none (as
    in the rollups). A campaign started inside the window sent all of it there (a message
    is sent after its campaign starts): counted from the index alone."""
    if not campaign_ids:
        return 0, 0
    starts = dict(
        session.execute(
            select(Campaign.id, Campaign.started_at).where(Campaign.id.in_(campaign_ids))
        ).all()
    )
    totals = {
        cid: n
        for cid, n in session.execute(
            select(Message.campaign_id, func.count())
            .where(Message.campaign_id.in_(campaign_ids), Message.status.in_(LEFT))
            .group_by(Message.campaign_id)
        ).all()
        if cid is not None  # automations' messages have no campaign (issue 18)
    }
    recent = sum(n for cid, n in totals.items() if _on_or_after(starts.get(cid), since30))
    older = [cid for cid in totals if not _on_or_after(starts.get(cid), since30)]
    if older:
        recent += (
            session.scalar(
                select(func.count()).where(
                    Message.campaign_id.in_(older),
                    Message.status.in_(LEFT),
                    Message.sent_at >= since30,
                )
            )
            or 0
        )
    return sum(totals.values()), recent


def _automation_sent(session: Session, ws: int, since30: datetime) -> tuple[int, int]:
    """Automations' mail sent (or uncertain): all time, and since `since30` (issue 18).
    Counted live, over the partial index that holds only automations' ledger rows; their
    bounces and complaints are in the event counts, so the health figures need them."""
    row = session.execute(
        select(func.count(), func.count(case((Message.sent_at >= since30, 1))))
        .select_from(Message)
        .where(
            Message.workspace_id == ws,
            Message.automation_id.is_not(None),
            Message.status.in_(LEFT),
        )
    ).one()
    return int(row[0]), int(row[1])


def _on_or_after(value: datetime | None, since: datetime) -> bool:
    return value is not None and as_utc(value) >= since


def _average_rates(
    session: Session,
    actor: Actor,
    roll: Any,
    stable: set[int],
    through: int,
    last: int,
    use_rollups: bool,
) -> tuple[float | None, float | None, int]:
    """Average open and click rates of the last `last` campaigns with deliveries.

    A finished, unchanged campaign takes its counts from the rollups plus its events beyond
    the mark (`_counts_beyond`); any other from `campaign_figures`."""
    ws = actor.workspace_id
    moved: set[int] = set()
    if roll is not None:
        moved = {
            cid
            for cid in session.scalars(
                select(Event.campaign_id)
                .where(
                    Event.workspace_id == ws,
                    Event.id > through,
                    Event.type.in_(_RATE_EVENTS),
                    Event.campaign_id.is_not(None),
                )
                .distinct()
            ).all()
            if cid is not None
        }
    source = session.scalar(select(Workspace.tracking_source).where(Workspace.id == ws)) or "own"
    candidates = session.scalars(
        select(Campaign.id)
        .where(
            Campaign.workspace_id == ws,
            Campaign.status.in_((CampaignStatus.SENT, CampaignStatus.SENDING)),
        )
        .order_by(Campaign.started_at.desc().nulls_last(), Campaign.id.desc())
    ).all()
    picked: list[tuple[float, float]] = []
    for cid in candidates:
        if roll is not None and cid in stable and cid in roll.counts:
            sent, bounces, delivered_events, opens, clicks = roll.counts[cid]
            if cid in moved:
                new = _counts_beyond(session, cid, source, through)
                delivered_events += new.get("delivered", 0)
                bounces += new.get("bounce", 0)
                opens += new.get("open", 0)
                clicks += new.get("click", 0)
            delivered = delivered_events or max(sent - bounces, 0)
            open_rate, click_rate = rate(opens, delivered), rate(clicks, delivered)
        else:
            fig = campaign_figures(session, actor, cid, use_rollups=use_rollups)
            delivered = fig.delivered
            open_rate, click_rate = fig.rates["open_rate"], fig.rates["click_rate"]
        if delivered > 0:
            picked.append((open_rate or 0.0, click_rate or 0.0))
        if len(picked) == last:
            break
    if not picked:
        return None, None, 0
    n = len(picked)
    return sum(o for o, _ in picked) / n, sum(c for _, c in picked) / n, n


def _counts_beyond(session: Session, campaign_id: int, source: str, through: int) -> dict[str, int]:
    """Messages of one campaign that had their first delivery, bounce, human open or human
    click (from the tracking source) after event id `through`, by type: what a rollup built
    through `through` does not count yet."""
    prior = aliased(Event)
    first = ~(
        select(prior.id)
        .where(
            prior.message_id == Event.message_id,
            prior.type == Event.type,
            prior.id <= through,
            or_(
                Event.type.in_(("delivered", "bounce")),
                and_(prior.source == Event.source, prior.is_machine == Event.is_machine),
            ),
        )
        .exists()
    )
    rows = session.execute(
        select(Event.type, func.count(func.distinct(Event.message_id)))
        .where(
            Event.campaign_id == campaign_id,
            Event.id > through,
            or_(
                Event.type.in_(("delivered", "bounce")),
                and_(
                    Event.type.in_(("open", "click")),
                    Event.source == source,
                    Event.is_machine.is_(False),
                ),
            ),
            first,
        )
        .group_by(Event.type)
    ).all()
    return {type_: int(n) for type_, n in rows}


def _utc_day(value: Any) -> date:
    if isinstance(value, datetime):
        return as_utc(value).astimezone(UTC).date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _lost_by_day(session: Session, ws: int, roll: Any, since90: datetime) -> dict[date, int]:
    """Contacts lost per UTC day in the 90-day window: the rollups' days plus the (contact,
    day) pairs that only events beyond the mark make."""
    through = roll.through if roll else 0
    lost_events = (
        Event.contact_id.is_not(None),
        Event.type.in_(("unsubscribe", "complaint", "bounce")),
        _LOST,
        Event.occurred_at >= since90,
    )
    pairs = {
        (contact, _utc_day(at))
        for contact, at in session.execute(
            select(Event.contact_id, Event.occurred_at).where(
                Event.workspace_id == ws, Event.id > through, *lost_events
            )
        ).all()
    }
    if roll is not None and pairs:
        contacts = sorted({c for c, _ in pairs if c is not None})
        for i in range(0, len(contacts), 500):
            counted = session.execute(
                select(Event.contact_id, Event.occurred_at).where(
                    Event.contact_id.in_(contacts[i : i + 500]), Event.id <= through, *lost_events
                )
            ).all()
            pairs -= {(c, _utc_day(at)) for c, at in counted}
    lost = Counter(roll.lost_by_day if roll else {})
    for _, day in pairs:
        lost[day] += 1
    return dict(lost)


def _added_by_day(session: Session, ws: int, since90: datetime) -> dict[date, int]:
    """Contacts created per UTC day in the 90-day window (an index range of
    ix_contact_workspace_created)."""
    if session.get_bind().dialect.name == "postgresql":
        day = func.date_trunc("day", func.timezone("UTC", Contact.created_at))
    else:
        day = func.date(Contact.created_at)
    rows = session.execute(
        select(day.label("day"), func.count())
        .where(Contact.workspace_id == ws, Contact.created_at >= since90)
        .group_by(literal_column("day"))
    ).all()
    out: Counter[date] = Counter()
    for d, n in rows:
        out[_utc_day(d)] += n
    return dict(out)


def _growth(
    total: int, added: dict[date, int], lost: dict[date, int], d90: date, today: date
) -> list[dict[str, Any]]:
    """One row per UTC day of the 90-day window through today (from the first day with
    contacts, when the workspace is younger than the window)."""
    later = sum(n for d, n in added.items() if d > today)
    cumulative = total - later - sum(n for d, n in added.items() if d90 <= d <= today)
    days = [d for d in (*added, *lost) if d90 <= d <= today]
    if cumulative > 0:  # contacts from before the window: the chart starts with it
        days.append(d90)
    if not days:
        return []
    rows = []
    day = min(days)
    while day <= today:
        cumulative += added.get(day, 0)
        rows.append(
            {
                "day": day,
                "new_contacts": added.get(day, 0),
                "lost_contacts": lost.get(day, 0),
                "cumulative_contacts": cumulative,
            }
        )
        day += timedelta(days=1)
    return rows
