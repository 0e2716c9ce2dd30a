"""The combined reach of a campaign and its resends to non-openers (core.campaigns.resend).

A family is a campaign and every campaign whose `parent_campaign_id` names it. Its reach
counts people, not messages: a contact who received both the first send and the resend is
one recipient; one who opened either is one opener. Opens and clicks follow the campaign
report's rules (the workspace's tracking source; machine opens and clicks not counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.analytics.reports.campaign import _campaign, _tracking_source, rate
from core.infra.permissions import Actor
from core.models import Campaign, Event, Message
from core.models.statuses import LEFT


@dataclass
class ReachPart:
    campaign_id: int
    name: str
    status: str
    is_resend: bool
    recipients: int = 0
    opened: int = 0
    clicked: int = 0


@dataclass
class Reach:
    """Unique people across the family: who received, opened, clicked; and each part."""

    root_id: int
    recipients: int = 0
    opened: int = 0
    clicked: int = 0
    parts: list[ReachPart] = field(default_factory=list)

    @property
    def open_rate(self) -> float | None:
        return rate(self.opened, self.recipients)

    @property
    def click_rate(self) -> float | None:
        return rate(self.clicked, self.recipients)


def _people(session: Session, ids: list[int], source: str) -> tuple[int, int, int]:
    """(recipients, openers, clickers) over the campaigns `ids`, each person once."""
    recipients = session.scalar(
        select(func.count(func.distinct(Message.contact_id))).where(
            Message.campaign_id.in_(ids), Message.status.in_(LEFT)
        )
    )
    counts = dict(
        session.execute(
            select(Event.type, func.count(func.distinct(Event.contact_id)))
            .where(
                Event.campaign_id.in_(ids),
                Event.type.in_(("open", "click")),
                Event.source == source,
                Event.is_machine.is_(False),
            )
            .group_by(Event.type)
        ).all()
    )
    return int(recipients or 0), int(counts.get("open", 0)), int(counts.get("click", 0))


def combined_reach(session: Session, actor: Actor, campaign_id: int) -> Reach | None:
    """The reach of the family `campaign_id` belongs to; None when it has no resend."""
    campaign = _campaign(session, actor, campaign_id)
    root = campaign
    if campaign.parent_campaign_id is not None:
        parent = session.get(Campaign, campaign.parent_campaign_id)
        if parent is not None and parent.workspace_id == actor.workspace_id:
            root = parent
    children = list(
        session.scalars(
            select(Campaign)
            .where(
                Campaign.workspace_id == actor.workspace_id,
                Campaign.parent_campaign_id == root.id,
            )
            .order_by(Campaign.id)
        )
    )
    if not children:
        return None
    source = _tracking_source(session, actor.workspace_id) or "own"
    family = [root, *children]
    reach = Reach(root.id)
    for member in family:
        part = ReachPart(member.id, member.name, member.status, member is not root)
        part.recipients, part.opened, part.clicked = _people(session, [member.id], source)
        reach.parts.append(part)
    reach.recipients, reach.opened, reach.clicked = _people(session, [m.id for m in family], source)
    return reach
