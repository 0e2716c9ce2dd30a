"""A campaign's report: figures, timeline, top links, comparisons, from covering indexes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, literal_column, select
from sqlalchemy.orm import Session, aliased

from core.infra.clock import as_utc
from core.infra.errors import NotFound, ValidationFailed
from core.infra.permissions import Actor
from core.models import Campaign, Event, Message, Workspace
from core.models.statuses import LEFT, CampaignStatus

RATE_DEFINITIONS = {
    "open_rate": "unique human opens ÷ delivered",
    "click_rate": "unique clicks ÷ delivered",
    "click_to_open_rate": "unique clicks ÷ unique human opens",
    "bounce_rate": "bounced messages (hard or soft) ÷ sent",
    "complaint_rate": "complaints ÷ delivered",
    "unsubscribe_rate": "unsubscribes ÷ delivered",
}
# What a marketer reads for each rate (never "CTO" alone), with a sentence of help.
RATE_LABELS = {
    "open_rate": "Open rate",
    "click_rate": "Click rate",
    "click_to_open_rate": "Click-to-open rate",
    "bounce_rate": "Bounce rate",
    "complaint_rate": "Complaint rate",
    "unsubscribe_rate": "Unsubscribe rate",
}
RATE_HELP = {
    "open_rate": "Share of delivered emails opened by a person (image proxies and "
    "prefetchers not counted).",
    "click_rate": "Share of delivered emails in which someone clicked a link.",
    "click_to_open_rate": "Of the people who opened, the share who also clicked: how "
    "convincing the content was once read.",
    "bounce_rate": "Share of sent emails the receiving server refused, permanently (hard) or "
    "for now (soft). SES reviews an account from 5 %.",
    "complaint_rate": "Share of delivered emails marked as spam. SES reviews an account from "
    "0.1 %.",
    "unsubscribe_rate": "Share of delivered emails whose recipient unsubscribed.",
}
# The counts of a campaign, in the order and words of the report ("Compare campaigns").
FIGURE_LABELS = {
    "recipients": "Recipients",
    "sent": "Sent",
    "uncertain": "Sent, not confirmed (worker stopped mid-send)",
    "failed": "Failed",
    "delivered": "Delivered",
    "hard_bounces": "Hard bounces",
    "soft_bounces": "Soft bounces",
    "complaints": "Spam complaints",
    "unsubscribes": "Unsubscribes",
    "unique_opens": "People who opened",
    "total_opens": "Opens (all)",
    "machine_opens": "Automatic opens (not counted)",
    "unique_clicks": "People who clicked",
    "total_clicks": "Clicks (all)",
}


def rate(numerator: int, denominator: int) -> float | None:
    """numerator ÷ denominator, or None when there is nothing to divide by."""
    return numerator / denominator if denominator else None


@dataclass
class CampaignFigures:
    campaign_id: int
    name: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    recipients: int = 0
    queued: int = 0
    sent: int = 0
    uncertain: int = 0
    failed: int = 0
    cancelled: int = 0
    delivered: int = 0
    # True when the transport reports no deliveries (SMTP, outbox): sent − bounced.
    delivered_estimated: bool = False
    hard_bounces: int = 0
    soft_bounces: int = 0
    bounces: int = 0
    complaints: int = 0
    unsubscribes: int = 0
    unique_opens: int = 0
    total_opens: int = 0
    machine_opens: int = 0
    unique_clicks: int = 0
    total_clicks: int = 0
    tracking_source: str = "own"

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

    @property
    def is_live(self) -> bool:
        """Still sending: the report page refreshes itself."""
        return self.status in (CampaignStatus.SENDING, CampaignStatus.SCHEDULED)

    @property
    def not_reported(self) -> int:
        """Sent, but neither delivered nor bounced yet (SES reports a moment later)."""
        return max(self.sent - self.delivered - self.bounces, 0)

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row.update(self.rates)
        return row


@dataclass
class TimelinePoint:
    start: datetime
    granularity: str  # "hour" or "day"
    opens: int = 0
    clicks: int = 0


@dataclass
class LinkClicks:
    url: str
    unique_clicks: int
    total_clicks: int


@dataclass
class CampaignReport:
    figures: CampaignFigures
    timeline: list[TimelinePoint]
    links: list[LinkClicks]


def _campaign(session: Session, actor: Actor, campaign_id: int) -> Campaign:
    actor.require("read")
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.workspace_id != actor.workspace_id:
        raise NotFound("That campaign does not exist in this workspace.")
    return campaign


def _tracking_source(session: Session, workspace_id: int) -> str | None:
    return session.scalar(select(Workspace.tracking_source).where(Workspace.id == workspace_id))


def campaign_figures(
    session: Session, actor: Actor, campaign_id: int, use_rollups: bool = True
) -> CampaignFigures:
    """Counts and rates of one campaign, live from the ledger and the events.

    Deliveries, opens and clicks of a big campaign are millions of index entries; with
    `use_rollups` they are the rollups' counts up to the event id the rollups were built
    through, plus the newer events counted live (a newer event is unique only if its
    message had no such event before). Without rollups (or with another database's),
    every event is counted here.
    """
    campaign = _campaign(session, actor, campaign_id)
    source = _tracking_source(session, campaign.workspace_id) or "own"
    fig = CampaignFigures(
        campaign.id,
        campaign.name,
        campaign.status,
        as_utc(campaign.started_at),
        as_utc(campaign.finished_at),
        tracking_source=source,
    )
    # The ledger: an index-only scan of (campaign_id, status, id).
    by_status = dict(
        session.execute(
            select(Message.status, func.count())
            .where(Message.campaign_id == campaign.id)
            .group_by(Message.status)
        ).all()
    )
    fig.recipients = sum(by_status.values())
    fig.sent = sum(by_status.get(s, 0) for s in LEFT)
    fig.uncertain = by_status.get("uncertain", 0)
    fig.failed = by_status.get("failed", 0)
    fig.cancelled = by_status.get("cancelled", 0)
    fig.queued = sum(by_status.get(s, 0) for s in ("queued", "held", "sending"))

    snap = _snapshot(session, campaign) if use_rollups else None
    if snap is None:
        delivered_events = _full_event_counts(session, campaign.id, source, fig)
    else:
        delivered_events = _snapshot_plus_delta(session, campaign.id, source, snap, fig)
    # Complaints and unsubscribes are few: always counted live, each message once.
    for type_, n in session.execute(
        select(Event.type, func.count(func.distinct(Event.message_id)))
        .where(Event.campaign_id == campaign.id, Event.type.in_(("complaint", "unsubscribe")))
        .group_by(Event.type)
    ).all():
        if type_ == "complaint":
            fig.complaints = n
        else:
            fig.unsubscribes = n
    # Bounces are few: split hard and soft, and count each bounced message once.
    bounce_rows = session.execute(
        select(
            Event.bounce_type,
            func.count(func.distinct(Event.message_id)),
        )
        .where(Event.campaign_id == campaign.id, Event.type == "bounce")
        .group_by(Event.bounce_type)
    ).all()
    for bounce_type, n in bounce_rows:
        if bounce_type == "hard":
            fig.hard_bounces = n
        else:
            fig.soft_bounces += n
    if bounce_rows:
        fig.bounces = (
            session.scalar(
                select(func.count(func.distinct(Event.message_id))).where(
                    Event.campaign_id == campaign.id, Event.type == "bounce"
                )
            )
            or 0
        )
    if delivered_events:
        fig.delivered = delivered_events
    elif fig.sent:
        # Sent and not bounced: the same rule marks each row of the recipients table, so
        # the rows' "delivered" ticks add up to this figure.
        bounced_sent = 0
        if bounce_rows:
            bounced_sent = (
                session.scalar(
                    select(func.count(func.distinct(Event.message_id)))
                    .join(Message, Message.id == Event.message_id)
                    .where(
                        Event.campaign_id == campaign.id,
                        Event.type == "bounce",
                        Message.status.in_(LEFT),
                    )
                )
                or 0
            )
        fig.delivered = max(fig.sent - bounced_sent, 0)
        fig.delivered_estimated = True
    return fig


COUNTED_TYPES = ("click", "delivered", "open")


def _snapshot(session: Session, campaign: Campaign):
    from core.analytics import rollups

    key = rollups.source_key(session.get_bind().engine.url)
    return rollups.campaign_snapshot(campaign.workspace_id, campaign.id, key)


def _apply(fig: CampaignFigures, source: str, rows) -> int:
    """Add (type, source, machine, unique, total) rows to `fig`; returns unique deliveries."""
    delivered = 0
    for type_, ev_source, machine, unique, total in rows:
        unique, total = int(unique or 0), int(total or 0)
        if type_ == "delivered":
            delivered += unique
        elif type_ == "open" and ev_source == source:
            if machine:
                fig.machine_opens += total
            else:
                fig.unique_opens += unique
                fig.total_opens += total
        elif type_ == "click" and ev_source == source and not machine:
            fig.unique_clicks += unique
            fig.total_clicks += total
    return delivered


def _full_event_counts(session: Session, campaign_id: int, source: str, fig) -> int:
    # Per (type, source, machine) the messages that had one and how many; the inner
    # GROUP BY follows ix_event_campaign_report: no sort and no table access.
    per_message = (
        select(
            Event.type, Event.source, Event.is_machine, Event.message_id, func.count().label("n")
        )
        .where(Event.campaign_id == campaign_id, Event.type.in_(COUNTED_TYPES))
        .group_by(Event.type, Event.source, Event.is_machine, Event.message_id)
        .subquery()
    )
    rows = session.execute(
        select(
            per_message.c.type,
            per_message.c.source,
            per_message.c.is_machine,
            func.count(),
            func.sum(per_message.c.n),
        ).group_by(per_message.c.type, per_message.c.source, per_message.c.is_machine)
    ).all()
    return _apply(fig, source, rows)


def _snapshot_plus_delta(session: Session, campaign_id: int, source: str, snap, fig) -> int:
    fig.unique_opens, fig.total_opens = snap.unique_opens, snap.total_opens
    fig.machine_opens = snap.machine_opens
    fig.unique_clicks, fig.total_clicks = snap.unique_clicks, snap.total_clicks
    prior = aliased(Event)
    is_new = ~(
        select(prior.id)
        .where(
            prior.message_id == Event.message_id,
            prior.type == Event.type,
            prior.source == Event.source,
            prior.is_machine == Event.is_machine,
            prior.id <= snap.through,
        )
        .exists()
    )
    delta = (
        select(
            Event.type,
            Event.source,
            Event.is_machine,
            Event.message_id,
            case((is_new, Event.message_id)).label("new_message"),
        )
        .where(
            Event.id > snap.through,
            Event.campaign_id == campaign_id,
            Event.type.in_(COUNTED_TYPES),
        )
        .subquery()
    )
    rows = session.execute(
        select(
            delta.c.type,
            delta.c.source,
            delta.c.is_machine,
            func.count(func.distinct(delta.c.new_message)),
            func.count(),
        ).group_by(delta.c.type, delta.c.source, delta.c.is_machine)
    ).all()
    return snap.delivered_events + _apply(fig, source, rows)


def _hour_bucket(session: Session):
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc("hour", func.timezone("UTC", Event.occurred_at))
    return func.strftime("%Y-%m-%d %H:00:00", Event.occurred_at)


def _parse_bucket(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def campaign_timeline(
    session: Session, actor: Actor, campaign_id: int, use_rollups: bool = True
) -> list[TimelinePoint]:
    """Human opens and clicks per hour for the first 48 hours after the start, per day after.

    With `use_rollups`, hours come from the rollups plus newer events counted live."""
    campaign = _campaign(session, actor, campaign_id)
    source = _tracking_source(session, campaign.workspace_id) or "own"
    snap = _snapshot(session, campaign) if use_rollups else None
    bucket = _hour_bucket(session).label("bucket")
    query = (
        select(bucket, Event.type, func.count())
        .where(
            Event.campaign_id == campaign.id,
            Event.type.in_(("open", "click")),
            Event.source == source,
            Event.is_machine.is_(False),
        )
        .group_by(literal_column("bucket"), Event.type)
    )
    if snap is not None:
        query = query.where(Event.id > snap.through)
    hours = [(_parse_bucket(b), t, n) for b, t, n in session.execute(query).all()]
    if snap is not None:
        for hour, (opens, clicks) in snap.hours.items():
            hours += [(hour, "open", opens), (hour, "click", clicks)]
    if not hours:
        return []
    start = as_utc(campaign.started_at) or min(h for h, _, _ in hours)
    start = start.replace(minute=0, second=0, microsecond=0)
    cutoff = start + timedelta(hours=48)
    points: dict[tuple[datetime, str], TimelinePoint] = {}
    for hour, type_, n in hours:
        key = (hour, "hour") if hour < cutoff else (hour.replace(hour=0), "day")
        point = points.setdefault(key, TimelinePoint(key[0], key[1]))
        if type_ == "open":
            point.opens += n
        else:
            point.clicks += n
    return sorted((p for p in points.values() if p.opens or p.clicks), key=lambda p: p.start)


def top_links(
    session: Session, actor: Actor, campaign_id: int, limit: int = 10, use_rollups: bool = True
) -> list[LinkClicks]:
    """Links by unique (human) clickers, then total clicks."""
    campaign = _campaign(session, actor, campaign_id)
    source = _tracking_source(session, campaign.workspace_id) or "own"
    snap = _snapshot(session, campaign) if use_rollups else None
    human_clicks = (
        Event.campaign_id == campaign.id,
        Event.type == "click",
        Event.source == source,
        Event.is_machine.is_(False),
    )
    if snap is None:
        unique = func.count(func.distinct(Event.message_id))
        rows = session.execute(
            select(Event.url, unique, func.count())
            .where(*human_clicks)
            .group_by(Event.url)
            .order_by(unique.desc(), func.count().desc(), Event.url)
            .limit(limit)
        ).all()
        return [LinkClicks(url or "(no link)", int(u), int(t)) for url, u, t in rows]
    prior = aliased(Event)
    is_new = ~(
        select(prior.id)
        .where(
            prior.message_id == Event.message_id,
            prior.type == "click",
            prior.source == source,
            prior.is_machine.is_(False),
            prior.url == Event.url,
            prior.id <= snap.through,
        )
        .exists()
    )
    delta = (
        select(Event.url, case((is_new, Event.message_id)).label("new_message"))
        .where(Event.id > snap.through, *human_clicks)
        .subquery()
    )
    links = dict(snap.links)
    for url, new_unique, total in session.execute(
        select(delta.c.url, func.count(func.distinct(delta.c.new_message)), func.count()).group_by(
            delta.c.url
        )
    ).all():
        u, t = links.get(url or "", (0, 0))
        links[url or ""] = (u + int(new_unique), t + int(total))
    ranked = sorted(links.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))[:limit]
    return [LinkClicks(url or "(no link)", u, t) for url, (u, t) in ranked]


def campaign_report(session: Session, actor: Actor, campaign_id: int) -> CampaignReport:
    """Everything the report page shows above the recipients table."""
    return CampaignReport(
        campaign_figures(session, actor, campaign_id),
        campaign_timeline(session, actor, campaign_id),
        top_links(session, actor, campaign_id),
    )


def compare_campaigns(
    session: Session, actor: Actor, campaign_ids: list[int]
) -> list[CampaignFigures]:
    """Figures of several campaigns, side by side."""
    return [campaign_figures(session, actor, cid) for cid in campaign_ids]


def _count(n: int) -> str:
    return f"{n:,}"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def comparison_rows(figures: list[CampaignFigures]) -> list[dict[str, str]]:
    """Campaigns side by side as a marketer reads them: one row per figure (counts, then
    rates), one column per campaign named by its name (its id added only when two share a
    name), values formatted ("1,234", "12.5%", "–" when there is nothing to divide by)."""
    if not figures:
        raise ValidationFailed("Pick at least one campaign to compare.")
    names = [f.name for f in figures]
    columns = [
        f.name if names.count(f.name) == 1 else f"{f.name} (#{f.campaign_id})" for f in figures
    ]
    rows: list[dict[str, str]] = []
    for key, label in FIGURE_LABELS.items():
        if key == "delivered" and any(f.delivered_estimated for f in figures):
            label = "Delivered (estimated where marked ≈)"
        row = {"Figure": label}
        for column, f in zip(columns, figures, strict=True):
            value = _count(getattr(f, key))
            row[column] = f"≈ {value}" if key == "delivered" and f.delivered_estimated else value
        rows.append(row)
    for key, label in RATE_LABELS.items():
        row = {"Figure": label}
        for column, f in zip(columns, figures, strict=True):
            row[column] = _percent(f.rates[key])
        rows.append(row)
    return rows


@dataclass
class CampaignChoice:
    id: int
    name: str
    status: str
    started_at: datetime | None


def reportable_campaigns(session: Session, actor: Actor, limit: int = 500) -> list[CampaignChoice]:
    """Campaigns that have (or are getting) a report, newest first."""
    actor.require("read")
    rows = session.execute(
        select(Campaign.id, Campaign.name, Campaign.status, Campaign.started_at)
        .where(
            Campaign.workspace_id == actor.workspace_id,
            Campaign.status.in_(
                (
                    CampaignStatus.SENDING,
                    CampaignStatus.PAUSED,
                    CampaignStatus.SENT,
                    CampaignStatus.FAILED,
                    CampaignStatus.CANCELLED,
                )
            ),
        )
        .order_by(Campaign.started_at.desc().nulls_last(), Campaign.id.desc())
        .limit(limit)
    ).all()
    return [CampaignChoice(i, n, s, as_utc(t)) for i, n, s, t in rows]
