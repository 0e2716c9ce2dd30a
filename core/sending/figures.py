"""What is sending now, for the metrics scrape: each sending campaign's pending rows and how
long since it moved, each sending workspace's mails of the last minute against its limit.

Operations' view across every workspace (as the SNS inbox backlog is): the numbers carry
campaign and workspace ids only, never a name or an address.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from core.infra import clock
from core.infra.metrics import CampaignSending, SendingSnapshot, WorkspaceRate
from core.models import Campaign, Message, Workspace
from core.models.statuses import LEFT, CampaignStatus, MessageStatus

# Rows a sender still has to hand to the transport; an A/B test's held rest waits for the
# decision, not for a sender, so it is not pending here.
_PENDING = (MessageStatus.QUEUED, MessageStatus.UNCERTAIN, MessageStatus.SENDING)
WINDOW = timedelta(seconds=60)


def _seconds(now: datetime, then: datetime | None) -> float:
    at = clock.as_utc(then)
    return max(0.0, (now - at).total_seconds()) if at else 0.0


def sending_snapshot(session: Session, now: datetime | None = None) -> SendingSnapshot:
    """One pass over the sending campaigns' ledger rows, one over automations' recent sends."""
    now = now or clock.now()
    cutoff = now - WINDOW
    rows = session.execute(
        select(
            Message.campaign_id,
            Message.workspace_id,
            func.sum(case((Message.status.in_(_PENDING), 1), else_=0)),
            func.max(Message.updated_at),
            func.sum(case(((Message.status.in_(LEFT)) & (Message.sent_at >= cutoff), 1), else_=0)),
            Campaign.started_at,
        )
        .join(Campaign, Campaign.id == Message.campaign_id)
        .where(Campaign.status == CampaignStatus.SENDING)
        .group_by(Message.campaign_id, Message.workspace_id, Campaign.started_at)
        .order_by(Message.campaign_id)
    ).all()
    campaigns = []
    sent: dict[int, int] = {}
    for campaign_id, workspace_id, pending, last, recent, started in rows:
        campaigns.append(
            CampaignSending(
                campaign_id=campaign_id,
                pending=int(pending or 0),
                age_seconds=_seconds(now, started),
                idle_seconds=_seconds(now, last or started),
            )
        )
        sent[workspace_id] = sent.get(workspace_id, 0) + int(recent or 0)
    # Automations' sends share the workspace's rate (the partial index on sent_at).
    for workspace_id, count in session.execute(
        select(Message.workspace_id, func.count())
        .where(Message.automation_id.is_not(None), Message.sent_at >= cutoff)
        .group_by(Message.workspace_id)
    ):
        sent[workspace_id] = sent.get(workspace_id, 0) + int(count)
    limits = dict(
        session.execute(select(Workspace.id, Workspace.max_send_rate).where(Workspace.id.in_(sent)))
        .tuples()
        .all()
    )
    workspaces = [
        WorkspaceRate(workspace_id=ws, sent_last_minute=n, limit_per_second=float(limits[ws]))
        for ws, n in sorted(sent.items())
        if ws in limits
    ]
    return SendingSnapshot(campaigns=campaigns, workspaces=workspaces)
