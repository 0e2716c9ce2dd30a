"""Headline counts for a workspace (the dashboard's first row)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.models import Campaign, Contact, Template
from core.permissions import Actor


@dataclass
class WorkspaceCounts:
    contacts_by_status: dict[str, int]
    templates: int
    campaigns_by_status: dict[str, int]

    @property
    def subscribed(self) -> int:
        return self.contacts_by_status.get("subscribed", 0)


def workspace_counts(session: Session, actor: Actor) -> WorkspaceCounts:
    actor.require("read")
    ws = actor.workspace_id
    contacts = dict(
        session.execute(
            select(Contact.status, func.count())
            .where(Contact.workspace_id == ws)
            .group_by(Contact.status)
        ).all()
    )
    campaigns = dict(
        session.execute(
            select(Campaign.status, func.count())
            .where(Campaign.workspace_id == ws)
            .group_by(Campaign.status)
        ).all()
    )
    templates = session.scalar(
        select(func.count()).select_from(Template).where(Template.workspace_id == ws)
    )
    return WorkspaceCounts(contacts, templates or 0, campaigns)
