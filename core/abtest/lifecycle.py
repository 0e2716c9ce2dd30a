"""A test's life after the split: due tests, the decision (automatic or manual), the release
of the held rest to the winner exactly once, and beat's round."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.abtest.figures import _figures, _test_figures
from core.abtest.settings import MIN_VARIANTS, _campaign
from core.abtest.statistics import decide
from core.campaigns.dispatch import dispatch_batches
from core.infra import clock, metrics
from core.infra.db import rowcount
from core.infra.errors import NotFound, ValidationFailed
from core.infra.jobs import enqueue
from core.infra.permissions import Actor
from core.models import Campaign, Message, Variant
from core.models.statuses import CampaignStatus, MessageStatus

log = logging.getLogger(__name__)
IN_FLIGHT = (MessageStatus.QUEUED, MessageStatus.SENDING)
RELEASE_TASK = "worker.tasks_abtest.release_ab_rest"
_CHUNK = 5000


def wait_ends_at(campaign: Campaign) -> datetime | None:
    """When the test's waiting time ends: counted from the start of sending."""
    started = clock.as_utc(campaign.started_at)
    return started + timedelta(minutes=campaign.ab_wait_minutes) if started else None


def _variant_count():
    return (
        select(func.count())
        .select_from(Variant)
        .where(Variant.campaign_id == Campaign.id)
        .scalar_subquery()
    )


def _test_in_flight(session: Session, campaign_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Message)
            .where(
                Message.campaign_id == campaign_id,
                Message.status.in_(IN_FLIGHT),
                Message.ab_rest.is_(False),
            )
        )
        or 0
    )


def _is_due(session: Session, campaign: Campaign, now: datetime) -> bool:
    ends = wait_ends_at(campaign)
    return (
        ends is not None
        and ends <= now
        and campaign.ab_decided_at is None
        and campaign.ab_winner_variant_id is None
        and len(campaign.variants) >= MIN_VARIANTS
        and _test_in_flight(session, campaign.id) == 0
    )


def due_ab_tests(session: Session, now: datetime | None = None) -> list[int]:
    """Ids of A/B campaigns whose wait is over, test fully sent, and not yet evaluated."""
    now = now or clock.now()
    candidates = session.scalars(
        select(Campaign)
        .where(
            Campaign.status.in_((CampaignStatus.SENDING, CampaignStatus.SENT)),
            Campaign.started_at.is_not(None),
            Campaign.ab_decided_at.is_(None),
            Campaign.ab_winner_variant_id.is_(None),
            _variant_count() >= MIN_VARIANTS,
        )
        .order_by(Campaign.id)
    ).all()
    return [c.id for c in candidates if _is_due(session, c, now)]


def pending_releases(session: Session) -> list[int]:
    """Ids of campaigns with a winner whose held rest is not released yet (a sweep)."""
    held = (
        select(Message.id)
        .where(Message.campaign_id == Campaign.id, Message.status == MessageStatus.HELD)
        .exists()
    )
    return list(
        session.scalars(
            select(Campaign.id)
            .where(
                Campaign.ab_winner_variant_id.is_not(None),
                Campaign.status.in_(
                    (CampaignStatus.SENDING, CampaignStatus.SENT, CampaignStatus.PAUSED)
                ),
                held,
            )
            .order_by(Campaign.id)
        )
    )


def evaluate_ab_test(
    session: Session, campaign_id: int, now: datetime | None = None
) -> dict[str, Any] | None:
    """Decide the test when it is due: stores the decision (and the winner, if any).

    Returns the decision, the stored one if it was already made, or None when not due.
    """
    now = now or clock.now()
    campaign = session.scalars(
        select(Campaign).where(Campaign.id == campaign_id).with_for_update()
    ).one_or_none()
    if campaign is None:
        raise NotFound(f"Campaign {campaign_id} does not exist.")
    if campaign.ab_decided_at is not None:
        return campaign.ab_decision
    if not _is_due(session, campaign, now):
        return None
    variants = list(campaign.variants)
    decision = decide(
        [v.label for v in variants],
        _test_figures(campaign, _figures(session, campaign.id)),
        campaign.ab_winner_metric,
        campaign.ab_min_confidence,
    )
    decision |= {"how": "auto", "decided_at": now.isoformat()}
    winner = next((v for v in variants if v.label == decision["winner"]), None)
    campaign.ab_decision = decision
    campaign.ab_decided_at = now
    campaign.ab_winner_variant_id = winner.id if winner else None
    session.flush()
    outcome = "winner" if winner else "no_difference"
    metrics.count_on_commit(session, metrics.AB_DECISIONS.labels(outcome).inc)
    return decision


def choose_winner_manually(
    session: Session, actor: Actor, campaign_id: int, variant_id: int, now: datetime | None = None
) -> Campaign:
    """The marketer's pick: allowed at any time until a winner exists (so before the rest goes)."""
    actor.require("edit")
    now = now or clock.now()
    campaign = _campaign(session, actor, campaign_id)
    variant = next((v for v in campaign.variants if v.id == variant_id), None)
    if variant is None or len(campaign.variants) < MIN_VARIANTS:
        raise ValidationFailed("Pick one of this A/B test's variants.")
    if campaign.status in (CampaignStatus.CANCELLED, CampaignStatus.FAILED):
        raise ValidationFailed(f"The campaign is {campaign.status}; nothing more can be sent.")
    if campaign.started_at is None:
        raise ValidationFailed("The test has not started yet: send the campaign first.")
    decision = dict(campaign.ab_decision or {})
    if not decision:
        variants = list(campaign.variants)
        decision = decide(
            [v.label for v in variants],
            _test_figures(campaign, _figures(session, campaign.id)),
            campaign.ab_winner_metric,
            campaign.ab_min_confidence,
        )
    decision |= {
        "how": "manual",
        "winner": variant.label,
        "chosen_by": actor.email or f"user {actor.user_id}",
        "decided_at": now.isoformat(),
        "manual_reason": f"{variant.label} was chosen by {actor.email or 'a user'}.",
    }
    # Conditional: an automatic decision or another user may have picked first.
    result = session.execute(
        update(Campaign)
        .where(Campaign.id == campaign.id, Campaign.ab_winner_variant_id.is_(None))
        .values(ab_winner_variant_id=variant.id, ab_decided_at=now, ab_decision=decision)
        .execution_options(synchronize_session=False)
    )
    session.refresh(campaign)
    if rowcount(result) != 1:
        chosen = next(
            (v.label for v in campaign.variants if v.id == campaign.ab_winner_variant_id), "?"
        )
        raise ValidationFailed(f"Variant {chosen} has already been chosen as the winner.")
    metrics.count_on_commit(session, metrics.AB_DECISIONS.labels("manual").inc)
    if campaign.status in (CampaignStatus.SENDING, CampaignStatus.SENT, CampaignStatus.PAUSED):
        enqueue(session, RELEASE_TASK, campaign.id)
    return campaign


def release_rest(session: Session, campaign_id: int, now: datetime | None = None) -> int:
    """Queue the held rest with the winner's variant; how many rows this call released.

    One conditional UPDATE (held -> queued): a second call, or a concurrent one (it waits
    for the first's row locks, then finds nothing held), releases nothing.
    """
    now = now or clock.now()
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"Campaign {campaign_id} does not exist.")
    if campaign.ab_winner_variant_id is None:
        raise ValidationFailed("No winner has been chosen yet.")
    result = session.execute(
        update(Message)
        .where(Message.campaign_id == campaign_id, Message.status == MessageStatus.HELD)
        .values(status="queued", variant_id=campaign.ab_winner_variant_id, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    released = rowcount(result) or 0
    if released:
        decision = dict(campaign.ab_decision or {})
        decision["rest_released_at"] = now.isoformat()
        decision["rest_released"] = decision.get("rest_released", 0) + released
        campaign.ab_decision = decision
        session.flush()
    return released


def release_and_dispatch(sessions: sessionmaker[Session], campaign_id: int) -> int:
    """Release the held rest and queue its batches in one transaction (all or nothing),
    its own: it takes a session factory."""
    with sessions.begin() as session:
        released = release_rest(session, campaign_id)
        if released:
            dispatch_batches(session, campaign_id)
        return released


def run_due_tests(sessions: sessionmaker[Session]) -> dict[str, int]:
    """Decide every due test, then release the rest of every test with a winner.

    A sweep rather than a chain of steps: a crash between deciding and releasing is
    repaired on the next round. One broken campaign does not stop the others. One
    transaction per campaign, its own: it takes a session factory."""
    with sessions.begin() as session:
        due = due_ab_tests(session, clock.now())
    decided = 0
    for campaign_id in due:
        try:
            with sessions.begin() as session:
                decision = evaluate_ab_test(session, campaign_id, clock.now())
        except Exception:
            log.exception("A/B campaign %s: evaluation failed", campaign_id)
            continue
        if decision is not None:
            decided += 1
            log.info("A/B campaign %s: %s", campaign_id, decision.get("reason"))
    with sessions.begin() as session:
        pending = pending_releases(session)
    released = sum(release_and_dispatch(sessions, campaign_id) for campaign_id in pending)
    return {"due": len(due), "decided": decided, "released": released}
