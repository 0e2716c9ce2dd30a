"""The workspace's limits for the guard, and its standing over the last 30 days against
SES's review levels: close (80 % of a level) warns, over needs an owner to send."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.infra import clock
from core.infra.errors import PermissionDenied, ValidationFailed
from core.infra.permissions import Actor
from core.models import AuditLog, CampaignGuard, Event, Workspace

# SES puts an account under review at these rates and may pause its sending at the second
# pair (the dashboard compares the same levels: core.analytics.reports.dashboard).
SES_BOUNCE_REVIEW, SES_BOUNCE_PAUSE = 0.05, 0.10


SES_COMPLAINT_REVIEW, SES_COMPLAINT_PAUSE = 0.001, 0.005


CLOSE_TO_LEVEL = 0.8  # "close": at 80 % of a review level


@dataclass(frozen=True)
class GuardLimits:
    """A campaign is paused when its hard-bounce or complaint rate passes these (fractions)."""

    bounce: float = 0.04
    complaint: float = 0.0008


def get_limits(session: Session, actor: Actor) -> GuardLimits:
    actor.require("read")
    ws = session.get(Workspace, actor.workspace_id)
    if ws is None:
        raise ValidationFailed("This workspace no longer exists.")
    return GuardLimits(ws.guard_bounce_limit, ws.guard_complaint_limit)


def update_limits(session: Session, actor: Actor, limits: GuardLimits) -> GuardLimits:
    """Owners and admins set the guard's limits: above zero, and no higher than the rates at
    which SES may pause the whole account (10 % bounces, 0.5 % complaints)."""
    actor.require("admin")
    if not 0 < limits.bounce <= SES_BOUNCE_PAUSE:
        raise ValidationFailed(
            f"The hard-bounce limit is between 0 and {SES_BOUNCE_PAUSE:.0%} "
            "(SES may pause the account there)."
        )
    if not 0 < limits.complaint <= SES_COMPLAINT_PAUSE:
        raise ValidationFailed(
            f"The complaint limit is between 0 and {SES_COMPLAINT_PAUSE:.1%} "
            "(SES may pause the account there)."
        )
    ws = session.get(Workspace, actor.workspace_id)
    if ws is None:
        raise ValidationFailed("This workspace no longer exists.")
    ws.guard_bounce_limit = limits.bounce
    ws.guard_complaint_limit = limits.complaint
    session.add(
        AuditLog(
            workspace_id=ws.id,
            user_id=actor.user_id,
            action="settings_changed",
            detail={"guard_bounce_limit": limits.bounce, "guard_complaint_limit": limits.complaint},
        )
    )
    return limits


# Below this many messages sent in the window the rates mean nothing (as the campaign
# guard's GUARD_MIN_FEEDBACK): a new workspace's first test sends never need an override.
STANDING_MIN_SENT = 200


@dataclass(frozen=True)
class Standing:
    """The workspace's last 30 days (as the dashboard counts its window: from the start of
    the UTC day 29 days ago): bounces (hard and soft, as the dashboard's panel) and
    complaints over messages sent."""

    sent: int
    bounces: int
    complaints: int

    @property
    def bounce_rate(self) -> float:
        return self.bounces / self.sent if self.sent else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.sent if self.sent else 0.0

    def _level(self, value: float, review: float) -> str:
        if self.sent < STANDING_MIN_SENT:  # 2 bounces of 10 say nothing about the account
            return "ok"
        if value >= review:
            return "over"
        return "close" if value >= review * CLOSE_TO_LEVEL else "ok"

    @property
    def level(self) -> str:
        """ "ok", "close" (at 80 % of an SES review level) or "over" (at or above one)."""
        levels = (
            self._level(self.bounce_rate, SES_BOUNCE_REVIEW),
            self._level(self.complaint_rate, SES_COMPLAINT_REVIEW),
        )
        return "over" if "over" in levels else "close" if "close" in levels else "ok"

    @property
    def summary(self) -> str:
        """The rates in a marketer's words, against SES's review levels."""
        return (
            f"Over the last 30 days: {self.bounce_rate:.2%} bounces and "
            f"{self.complaint_rate:.3%} complaints of {self.sent:,} sent (SES reviews an "
            f"account at {SES_BOUNCE_REVIEW:.0%} bounces or {SES_COMPLAINT_REVIEW:.1%} "
            "complaints)."
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "bounces": self.bounces,
            "complaints": self.complaints,
            "bounce_rate": round(self.bounce_rate, 6),
            "complaint_rate": round(self.complaint_rate, 6),
        }


def workspace_standing(session: Session, actor: Actor) -> Standing:
    """Sent, bounced and complained over the last 30 days, from the events (three counts
    on the index over workspace, type and time)."""
    actor.require("read")
    today = clock.now().astimezone(UTC).date()
    since = datetime.combine(today - timedelta(days=29), time(), UTC)
    counts = dict(
        session.execute(
            select(Event.type, func.count())
            .where(
                Event.workspace_id == actor.workspace_id,
                Event.type.in_(("sent", "bounce", "complaint")),
                Event.occurred_at >= since,
            )
            .group_by(Event.type)
        ).all()
    )
    return Standing(counts.get("sent", 0), counts.get("bounce", 0), counts.get("complaint", 0))


class SendOverrideNeeded(ValidationFailed):
    """The workspace is at or above an SES review level: only an owner's explicit override
    sends now."""


def require_send_allowed(
    session: Session, actor: Actor, campaign_id: int, override: bool = False
) -> Standing:
    """Refuse to start a campaign while the workspace stands at or above an SES review level,
    unless an owner overrides; the override is recorded (campaign_guard and the audit log)."""
    standing = workspace_standing(session, actor)
    if standing.level != "over":
        return standing
    if not override:
        raise SendOverrideNeeded(
            f"{standing.summary} Sending more now risks an SES review: an owner must "
            "override to send."
        )
    if actor.role != "owner":
        raise PermissionDenied(
            "Only an owner can send while the workspace is over an SES review level."
        )
    row = session.get(CampaignGuard, campaign_id)
    if row is None:
        row = CampaignGuard(campaign_id=campaign_id, workspace_id=actor.workspace_id)
        session.add(row)
    row.send_override_at = clock.now()
    row.send_override_by_id = actor.user_id
    row.send_override_detail = {**standing.as_dict(), "by": actor.email}
    session.add(
        AuditLog(
            workspace_id=actor.workspace_id,
            user_id=actor.user_id,
            action="guard_send_override",
            target=str(campaign_id),
            detail=standing.as_dict(),
        )
    )
    return standing
