"""The dashboard: deliverability against SES's and Gmail's thresholds, recent and upcoming
campaigns, the workspace's totals."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.analytics.reports.campaign import CampaignFigures, rate
from core.infra import clock
from core.infra.clock import as_utc
from core.infra.errors import ValidationFailed
from core.infra.permissions import Actor
from core.models import Campaign, Contact
from core.models.statuses import CampaignStatus

# SES puts an account under review, then may pause sending, at these rates; Gmail asks
# bulk senders to stay under 0.3 % spam (we compare the complaint rate we can see).
SES_BOUNCE_REVIEW, SES_BOUNCE_PAUSE = 0.05, 0.10


SES_COMPLAINT_REVIEW, SES_COMPLAINT_PAUSE = 0.001, 0.005


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
    subscribed_change_30d: int | None
    sent_30d: int | None
    sent_all_time: int | None
    avg_open_rate: float | None
    avg_click_rate: float | None
    rate_campaigns: int
    recent: list[RecentCampaign]
    upcoming: list[RecentCampaign]
    growth: list[dict[str, Any]]  # day, new_contacts, cumulative_contacts (90 days)
    health: Deliverability | None
    rollup_built_at: datetime | None

    @property
    def has_rollups(self) -> bool:
        return self.rollup_built_at is not None


def dashboard(
    session: Session,
    actor: Actor,
    rollup_path: Path | None = None,
    last_campaigns: int = 10,
) -> Dashboard:
    """The landing page: live counts and lists from SQL, trends from the DuckDB rollups."""
    from core.analytics import rollups

    actor.require("read")
    ws = actor.workspace_id
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
    trends = rollups.dashboard_trends(ws, clock.now(), rollup_path, last_campaigns)
    return Dashboard(
        subscribed=by_status.get("subscribed", 0),
        contacts=sum(by_status.values()),
        subscribed_change_30d=trends.get("subscribed_change_30d"),
        sent_30d=trends.get("sent_30d"),
        sent_all_time=trends.get("sent_all_time"),
        avg_open_rate=trends.get("avg_open_rate"),
        avg_click_rate=trends.get("avg_click_rate"),
        rate_campaigns=trends.get("rate_campaigns", 0),
        recent=recent,
        upcoming=upcoming,
        growth=trends.get("growth", []),
        health=deliverability(trends["sent_30d"], trends["bounces_30d"], trends["complaints_30d"])
        if trends.get("built_at")
        else None,
        rollup_built_at=trends.get("built_at"),
    )


def figures_table(figures: list[CampaignFigures]) -> list[dict[str, Any]]:
    """Rows for a side-by-side comparison."""
    if not figures:
        raise ValidationFailed("Pick at least one campaign to compare.")
    return [f.as_row() for f in figures]
