"""The guard on a sending campaign: once at least GUARD_MIN_FEEDBACK of its messages have
SES feedback (delivered, bounced or complained), its hard-bounce and complaint rates are
compared with the workspace's limits, and a campaign past one is paused with the reason.

Re-arming after an override (a resume past the guard, recorded with who and when): the
first override re-arms the guard at the rates where SES may pause the whole account (10 %
hard bounces, 0.5 % complaints), so the same crossing never pauses the campaign again but a
campaign that keeps getting worse still stops before SES stops everything; after a second
override the guard leaves that campaign alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, case, distinct, func, insert, select, update
from sqlalchemy.orm import Session

from core.deliverability.standing import SES_BOUNCE_PAUSE, SES_COMPLAINT_PAUSE, GuardLimits
from core.infra import clock, jobs
from core.infra.config import settings
from core.infra.db import rowcount
from core.infra.errors import NotFound, ValidationFailed
from core.infra.permissions import Actor
from core.mail.compose import send_system_mail
from core.models import AuditLog, Campaign, CampaignGuard, Event, User, Workspace
from core.models.statuses import CampaignStatus

log = logging.getLogger(__name__)

GUARD_MIN_FEEDBACK = 200  # messages with SES feedback before the rates mean anything
NOTIFY_TASK = "worker.tasks_deliverability.notify_guard_pause"
FEEDBACK = ("delivered", "bounce", "complaint")


def limits_for(overrides: int, workspace: GuardLimits) -> GuardLimits | None:
    """The limits a campaign is held to after `overrides` resumes past the guard (None: the
    guard no longer pauses it)."""
    if overrides <= 0:
        return workspace
    if overrides == 1:
        return GuardLimits(
            max(workspace.bounce, SES_BOUNCE_PAUSE), max(workspace.complaint, SES_COMPLAINT_PAUSE)
        )
    return None


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.4g}%"


def pause_reason(metric: str, rate: float, feedback: int, limit: float, rearmed: bool) -> str:
    """ "Paused automatically: 6.1% hard bounces after 1,204 delivered (limit 4%)"."""
    what = f"{rate:.1%} hard bounces" if metric == "bounce" else f"{rate:.2%} complaints"
    after = ", SES's pause level, re-armed after an override" if rearmed else ""
    return f"Paused automatically: {what} after {feedback:,} delivered (limit {_pct(limit)}{after})"


def _connection(db: Session | Connection) -> Connection:
    if isinstance(db, Session):
        db.flush()
        return db.connection()
    return db


def feedback_counts(db: Session | Connection, campaign_id: int) -> tuple[int, int, int]:
    """(messages with SES feedback, with a hard bounce, with a complaint) of one campaign:
    distinct recipients, counted on the event index over campaign, type and contact."""
    e = Event.__table__.c

    def recipients(condition):
        return func.count(distinct(case((condition, e.contact_id))))

    row = (
        _connection(db)
        .execute(
            select(
                recipients(e.type.in_(FEEDBACK)),
                recipients(and_(e.type == "bounce", e.bounce_type == "hard")),
                recipients(e.type == "complaint"),
            ).where(e.campaign_id == campaign_id, e.type.in_(FEEDBACK))
        )
        .one()
    )
    return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0)


def check_campaigns(db: Session | Connection, campaign_ids: Iterable[int | None]) -> list[int]:
    """Pause each of these campaigns that is sending and past its limits; returns the ids
    paused. In the caller's transaction (the SNS drain's, which has just stored their
    feedback); `notify_later` queues the owners' and admins' mail."""
    ids = sorted({i for i in campaign_ids if i is not None})
    if not ids:
        return []
    conn = _connection(db)
    c, w, g = Campaign.__table__.c, Workspace.__table__.c, CampaignGuard.__table__.c
    rows = conn.execute(
        select(
            c.id,
            c.workspace_id,
            w.guard_bounce_limit,
            w.guard_complaint_limit,
            func.coalesce(g.overrides, 0),
        )
        .join(Workspace.__table__, w.id == c.workspace_id)
        .outerjoin(CampaignGuard.__table__, g.campaign_id == c.id)
        .where(c.id.in_(ids), c.status == CampaignStatus.SENDING)
    ).all()
    paused = []
    for campaign_id, workspace_id, bounce_limit, complaint_limit, overrides in rows:
        limits = limits_for(int(overrides), GuardLimits(bounce_limit, complaint_limit))
        if limits is None:
            continue
        feedback, hard, complaints = feedback_counts(conn, campaign_id)
        if feedback < GUARD_MIN_FEEDBACK:
            continue
        if hard / feedback > limits.bounce:
            metric, rate, limit = "bounce", hard / feedback, limits.bounce
        elif complaints / feedback > limits.complaint:
            metric, rate, limit = "complaint", complaints / feedback, limits.complaint
        else:
            continue
        reason = pause_reason(metric, rate, feedback, limit, rearmed=overrides > 0)
        if _pause(conn, campaign_id, workspace_id, reason, metric, rate, feedback):
            log.warning("campaign %s: %s", campaign_id, reason)
            paused.append(campaign_id)
    return paused


def notify_later(db: Session | Connection, paused: Iterable[int]) -> None:
    """Queue the mail about these pauses for after the caller's commit (a worker sends it,
    off the drain's path). A bare Connection has no commit hook: nothing is queued, and the
    banner still shows the pause."""
    if isinstance(db, Session):
        for campaign_id in paused:
            jobs.enqueue(db, NOTIFY_TASK, campaign_id)


def _pause(
    conn: Connection,
    campaign_id: int,
    workspace_id: int,
    reason: str,
    metric: str,
    rate: float,
    feedback: int,
) -> bool:
    """Pause a campaign that is still sending and record why; False if it no longer was."""
    at = clock.now()
    won = rowcount(
        conn.execute(
            update(Campaign.__table__)
            .where(
                Campaign.__table__.c.id == campaign_id,
                Campaign.__table__.c.status == CampaignStatus.SENDING,
            )
            .values(status=CampaignStatus.PAUSED, error=reason, updated_at=at)
        )
    )
    if not won:
        return False
    g = CampaignGuard.__table__
    values = {
        "paused_at": at,
        "reason": reason,
        "metric": metric,
        "rate": rate,
        "feedback": feedback,
        "acknowledged_at": None,
        "acknowledged_by_id": None,
        "notified_at": None,
    }
    # The UPDATE above holds the campaign's row: one pause writes this at a time.
    updated = rowcount(
        conn.execute(
            update(g).where(g.c.campaign_id == campaign_id).values(pauses=g.c.pauses + 1, **values)
        )
    )
    if not updated:
        conn.execute(
            insert(g).values(
                campaign_id=campaign_id,
                workspace_id=workspace_id,
                pauses=1,
                created_at=at,
                send_override_detail={},
                **values,
            )
        )
    conn.execute(
        insert(AuditLog.__table__).values(
            workspace_id=workspace_id,
            user_id=None,
            action="campaign_guard_paused",
            target=str(campaign_id),
            detail={"reason": reason, "metric": metric, "rate": rate, "feedback": feedback},
            created_at=at,
        )
    )
    return True


# --- what people do about a pause ---------------------------------------------------------


class GuardOverrideNeeded(ValidationFailed):
    """Resuming a campaign the guard paused overrides the guard: the caller must confirm."""


def guard_of(session: Session, actor: Actor, campaign_id: int) -> CampaignGuard | None:
    """The guard's record of a campaign of this workspace (None: it never acted on it)."""
    actor.require("read")
    row = session.get(CampaignGuard, campaign_id)
    return row if row is not None and row.workspace_id == actor.workspace_id else None


def overridden_by(session: Session, row: CampaignGuard) -> str:
    """Who overrode the guard last, as the report names them ("the system": the CLI)."""
    user = session.get(User, row.overridden_by_id) if row.overridden_by_id else None
    return user.email if user is not None else "the system"


def pending_override(session: Session, campaign: Campaign) -> CampaignGuard | None:
    """The guard's pause that holds this paused campaign, if the guard paused it last."""
    if campaign.status != CampaignStatus.PAUSED:
        return None
    row = session.get(CampaignGuard, campaign.id)
    if row is None or row.paused_at is None:
        return None
    if row.overridden_at is not None and clock.as_utc(row.overridden_at) >= clock.as_utc(
        row.paused_at
    ):
        return None
    return row


def next_arming(overrides: int) -> str:
    """What the guard does after the override that makes `overrides`, in plain words."""
    if limits_for(overrides, GuardLimits()) is None:
        return "the guard will not pause this campaign again"
    return (
        f"the guard pauses it again only at {_pct(SES_BOUNCE_PAUSE)} hard bounces or "
        f"{_pct(SES_COMPLAINT_PAUSE)} complaints, where SES may pause the whole account"
    )


def override_question(row: CampaignGuard) -> str:
    """The confirmation a person answers before resuming past the guard."""
    return (
        f"{row.reason}. Resume anyway? You override the guard and your name is recorded; "
        f"{next_arming(row.overrides + 1)}."
    )


def resume_question(session: Session, actor: Actor, campaign_id: int) -> str | None:
    """The confirmation to ask before resuming this campaign, or None when the guard did
    not pause it (a plain resume)."""
    actor.require("read")
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.workspace_id != actor.workspace_id:
        raise NotFound("No such campaign in this workspace.")
    row = pending_override(session, campaign)
    return None if row is None else override_question(row)


def override_pause(session: Session, actor: Actor, campaign: Campaign) -> CampaignGuard | None:
    """Record that `actor` resumes past the guard's pause (who, when); None if the guard did
    not pause it. The caller (campaigns.resume) resumes."""
    row = pending_override(session, campaign)
    if row is None:
        return None
    at = clock.now()
    row.overrides += 1
    row.overridden_at = at
    row.overridden_by_id = actor.user_id
    if row.acknowledged_at is None:
        row.acknowledged_at, row.acknowledged_by_id = at, actor.user_id
    session.add(
        AuditLog(
            workspace_id=actor.workspace_id,
            user_id=actor.user_id,
            action="guard_overridden",
            target=str(campaign.id),
            detail={"reason": row.reason, "overrides": row.overrides, "by": actor.email},
        )
    )
    return row


@dataclass(frozen=True)
class GuardAlert:
    """A pause nobody has looked at yet: the banner on every page."""

    campaign_id: int
    campaign_name: str
    reason: str
    paused_at: datetime | None  # never None here: the query asks for paused rows


def open_alerts(session: Session, actor: Actor) -> list[GuardAlert]:
    """Pauses not yet acknowledged, newest first; only owners and admins see them."""
    if not actor.can("admin"):
        return []
    rows = session.execute(
        select(
            CampaignGuard.campaign_id, Campaign.name, CampaignGuard.reason, CampaignGuard.paused_at
        )
        .join(Campaign, Campaign.id == CampaignGuard.campaign_id)
        .where(
            CampaignGuard.workspace_id == actor.workspace_id,
            CampaignGuard.acknowledged_at.is_(None),
            CampaignGuard.paused_at.is_not(None),
        )
        .order_by(CampaignGuard.paused_at.desc())
    ).all()
    return [GuardAlert(i, n, r, p if p is None else clock.as_utc(p)) for i, n, r, p in rows]


def acknowledge(session: Session, actor: Actor, campaign_id: int) -> bool:
    """An owner or admin has seen the pause: its banner goes (for everyone). False if there
    was nothing to acknowledge."""
    actor.require("admin")
    row = guard_of(session, actor, campaign_id)
    if row is None or row.paused_at is None or row.acknowledged_at is not None:
        return False
    row.acknowledged_at, row.acknowledged_by_id = clock.now(), actor.user_id
    return True


def send_pause_notices(session: Session, campaign_id: int) -> int:
    """Mail the workspace's owners and admins about the guard's pause of a campaign, once
    (the worker runs this, off the drain's path); returns how many were mailed."""
    row = session.get(CampaignGuard, campaign_id)
    campaign = session.get(Campaign, campaign_id)
    if row is None or campaign is None or row.paused_at is None or row.notified_at is not None:
        return 0
    if campaign.workspace_id != row.workspace_id:
        raise NotFound("The guard's record names another workspace.")
    to = session.scalars(
        select(User.email)
        .where(User.workspace_id == row.workspace_id, User.role.in_(("owner", "admin")))
        .order_by(User.id)
    ).all()
    name = " ".join(campaign.name.split())  # one line: it goes into a Subject
    link = f"{settings.app_base_url.rstrip('/')}/reports?campaign={campaign_id}"
    text = (
        f"The campaign “{name}” was paused by the deliverability guard.\n\n"
        f"{row.reason}.\n\nNothing more goes out until someone resumes it. Its report:"
    )
    for address in to:
        send_system_mail(address, f"Paused: “{name}” (deliverability guard)", text, link)
    row.notified_at = clock.now()
    return len(to)
