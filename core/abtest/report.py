"""The A/B section of a campaign report: per-variant figures, intervals, the trend, the decision."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.abtest.figures import _figures, _sum, _test_figures
from core.abtest.lifecycle import wait_ends_at
from core.abtest.settings import MIN_VARIANTS, _campaign
from core.abtest.statistics import INTERVAL_LEVEL, VariantFigures, decide, rule_metric
from core.infra import clock
from core.infra.permissions import Actor
from core.models import Campaign, Event, Message
from core.models.statuses import CampaignStatus


def _trend(
    session: Session, campaign: Campaign, figures: list[VariantFigures]
) -> list[dict[str, Any]]:
    """Cumulative human open and click rates per variant, hour by hour since the start."""
    started = clock.as_utc(campaign.started_at)
    if started is None:
        return []
    first = func.min(Event.occurred_at)
    rows = session.execute(
        select(Message.variant_id, Event.type, Event.message_id, first)
        .join(Message, Message.id == Event.message_id)
        .where(
            Event.campaign_id == campaign.id,
            Message.campaign_id == campaign.id,
            Message.ab_rest.is_(False),
            Event.type.in_(("open", "click")),
            Event.is_machine.is_(False),
        )
        .group_by(Message.variant_id, Event.type, Event.message_id)
    ).all()
    if not rows:
        return []
    # An open is the first open or click of a message; a click its first click.
    # Keyed by (variant id, message id), both nullable columns.
    first_open: dict[tuple[int | None, int | None], datetime] = {}
    first_click: dict[tuple[int | None, int | None], datetime] = {}
    for variant_id, type_, message_id, at in rows:
        at = clock.as_utc(at)
        key = (variant_id, message_id)
        if type_ == "click":
            first_click[key] = at
        if key not in first_open or at < first_open[key]:
            first_open[key] = at
    last = max(first_open.values())
    hours = min(max(int((last - started).total_seconds() // 3600) + 1, 1), 24 * 14)
    points = []
    for index, variant in enumerate(campaign.variants):
        base = figures[index].base
        opens = [0] * hours
        clicks = [0] * hours
        for bucket_of, target in ((first_open, opens), (first_click, clicks)):
            for (variant_id, _m), at in bucket_of.items():
                if variant_id == variant.id:
                    hour = int(max((at - started).total_seconds(), 0) // 3600)
                    target[min(hour, hours - 1)] += 1
        cum_opens = cum_clicks = 0
        for hour in range(hours):
            cum_opens += opens[hour]
            cum_clicks += clicks[hour]
            points.append(
                {
                    "variant": variant.label,
                    "hour": hour + 1,
                    "opens": cum_opens,
                    "clicks": cum_clicks,
                    "open_rate": cum_opens / base if base else 0.0,
                    "click_rate": cum_clicks / base if base else 0.0,
                }
            )
    return points


def ab_report(
    session: Session, actor: Actor, campaign_id: int, now: datetime | None = None
) -> dict[str, Any]:
    """Everything the A/B report shows, as plain data (the UI renders it as it is)."""
    actor.require("read")
    now = now or clock.now()
    campaign = _campaign(session, actor, campaign_id)
    variants = list(campaign.variants)
    figures = _figures(session, campaign.id)
    test = _test_figures(campaign, figures)
    rest = _sum([f for (_v, is_rest), f in figures.items() if is_rest])
    totals = _sum(list(figures.values()))
    is_ab = len(variants) >= MIN_VARIANTS
    report: dict[str, Any] = {
        "campaign_id": campaign.id,
        "name": campaign.name,
        "status": campaign.status,
        "is_ab": is_ab,
        "rule": campaign.ab_winner_metric,
        "metric": rule_metric(campaign.ab_winner_metric),
        "test_share": campaign.ab_test_share,
        "wait_minutes": campaign.ab_wait_minutes,
        "min_confidence": campaign.ab_min_confidence,
        "interval_level": INTERVAL_LEVEL,
        "wait_ends_at": None,
        "variants": [],
        "live": None,
        "decision": dict(campaign.ab_decision or {}),
        "winner": None,
        "summary": "",
        "held": figures.get((None, True), VariantFigures()).recipients,
        "rest": rest.as_dict(),
        "totals": totals.as_dict(),
        "trend": [],
        "can_choose_winner": False,
    }
    if not is_ab:
        report["summary"] = "This campaign is not an A/B test."
        return report
    ends = wait_ends_at(campaign)
    report["wait_ends_at"] = ends.isoformat() if ends else None
    live = decide(
        [v.label for v in variants], test, campaign.ab_winner_metric, campaign.ab_min_confidence
    )
    report["live"] = live
    probs = live["probability_best"]
    winner = next((v for v in variants if v.id == campaign.ab_winner_variant_id), None)
    for variant, fig in zip(variants, test, strict=True):
        row = fig.as_dict() | {
            "id": variant.id,
            "label": variant.label,
            "subject": variant.subject,
            "from_name": variant.from_name or campaign.from_name,
            "template_id": variant.template_id,
            "probability_best": probs[variant.label],
            "is_leader": variant.label == live["leader"],
            "is_winner": winner is not None and variant.id == winner.id,
        }
        report["variants"].append(row)
    report["trend"] = _trend(session, campaign, test)
    decision = report["decision"]
    if winner is not None:
        how = decision.get("how", "auto")
        why = decision.get("manual_reason") if how == "manual" else decision.get("reason")
        report["winner"] = {"variant_id": winner.id, "label": winner.label, "how": how}
        released = decision.get("rest_released_at")
        tail = (
            f" The rest ({decision.get('rest_released', 0)}) was released on {released}."
            if released
            else (" The rest is being released." if report["held"] else "")
        )
        report["summary"] = f"Winner: {winner.label} ({how}). {why}{tail}"
    elif campaign.ab_decided_at is not None:
        report["summary"] = decision.get("reason", "")
    elif ends is None:
        report["summary"] = "The test has not started yet."
    elif now < ends:
        report["summary"] = (
            f"The test is running; it is evaluated at {ends:%Y-%m-%d %H:%M} UTC. "
            f"So far: {live['reason']}"
        )
    else:
        report["summary"] = "The waiting time is over; the test is evaluated shortly."
    report["can_choose_winner"] = (
        winner is None
        and campaign.status not in (CampaignStatus.CANCELLED, CampaignStatus.FAILED)
        and actor.can("edit")
        and campaign.started_at is not None
    )
    return report
