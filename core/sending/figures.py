"""What is sending now, for the metrics scrape: each sending campaign's pending rows and its
age, and the send-rate limit of each workspace that is sending.

Operations' view across every workspace (as the SNS inbox backlog is): the numbers carry
campaign and workspace ids only, never a name or an address. The cost is one index range per
pending status of each sending campaign: it shrinks as the campaign goes out.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.infra import clock
from core.infra.metrics import CampaignSending, SendingSnapshot, WorkspaceRate
from core.models import Campaign, Message, Workspace
from core.models.statuses import CampaignStatus, MessageStatus

# Rows a sender still has to hand to the transport; an A/B test's held rest waits for the
# decision, not for a sender, so it is not pending here.
_PENDING = (MessageStatus.QUEUED, MessageStatus.UNCERTAIN, MessageStatus.SENDING)


def _pending(session: Session, campaign_id: int) -> int:
    # One equality per status: each an index-only range of ix_message_campaign_status_id
    # (an IN list made PostgreSQL visit every heap page of a fresh million-row ledger).
    return sum(
        session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.campaign_id == campaign_id, Message.status == status)
        )
        or 0
        for status in _PENDING
    )


def sending_snapshot(session: Session, now: datetime | None = None) -> SendingSnapshot:
    """The campaigns in status sending, with their pending rows, and their workspaces."""
    now = now or clock.now()
    rows = session.execute(
        select(Campaign.id, Campaign.started_at, Workspace.id, Workspace.max_send_rate)
        .join(Workspace, Workspace.id == Campaign.workspace_id)
        .where(Campaign.status == CampaignStatus.SENDING)
        .order_by(Campaign.id)
    ).all()
    campaigns, limits = [], {}
    for campaign_id, started, workspace_id, rate in rows:
        started_at = clock.as_utc(started)
        campaigns.append(
            CampaignSending(
                campaign_id=campaign_id,
                pending=_pending(session, campaign_id),
                age_seconds=max(0.0, (now - started_at).total_seconds()) if started_at else 0.0,
            )
        )
        limits[workspace_id] = float(rate or 0.0)
    workspaces = [WorkspaceRate(ws, limit) for ws, limit in sorted(limits.items())]
    return SendingSnapshot(campaigns=campaigns, workspaces=workspaces)
