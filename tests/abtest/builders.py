"""Rows for A/B tests, written directly: campaigns, a ledger snapshot, sends and events."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from core import abtest
from core.campaigns import split
from core.infra.db import session_scope
from core.infra.permissions import Actor
from core.models import Campaign, Contact, Event, Message, Template, Workspace
from tests.helpers import actor_of, make_user, make_workspace

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
_seq = itertools.count(1)


def make_templates(session: Session, workspace: Workspace, n: int = 2) -> list[int]:
    ids = []
    for i in range(n):
        template = Template(
            workspace_id=workspace.id, name=f"T{i}-{next(_seq)}", subject="Hi", html="<p>Hi</p>"
        )
        session.add(template)
        session.flush()
        ids.append(template.id)
    return ids


def make_contacts(session: Session, workspace: Workspace, n: int) -> list[int]:
    tag = next(_seq)
    session.execute(
        insert(Contact),
        [
            {"workspace_id": workspace.id, "email": f"c{tag}-{i}@example.com", "custom_fields": {}}
            for i in range(n)
        ],
    )
    return list(
        session.scalars(
            select(Contact.id)
            .where(Contact.workspace_id == workspace.id, Contact.email.like(f"c{tag}-%"))
            .order_by(Contact.id)
        )
    )


def settings_for(templates: list[int], n: int = 2, **overrides) -> dict:
    settings = {
        "variants": [
            {"subject": f"Subject {label}", "template_id": templates[i % len(templates)]}
            for i, label in enumerate("ABCDE"[:n])
        ],
        "test_share": 20,
        "winner_rule": "click",
        "wait_minutes": 240,
        "min_confidence": 0.9,
        "seed": 12345,
    }
    return settings | overrides


def make_ab_campaign(
    session: Session, actor: Actor, workspace: Workspace, settings: dict, name: str = ""
) -> Campaign:
    campaign = Campaign(workspace_id=workspace.id, name=name or f"Spring sale {next(_seq)}")
    session.add(campaign)
    session.flush()
    return abtest.configure_ab_test(session, actor, campaign.id, settings)


def snapshot(session: Session, campaign: Campaign, contact_ids: list[int]) -> None:
    """What sending's snapshot does: one queued ledger row per recipient, no variant yet."""
    session.execute(
        insert(Message),
        [
            {
                "workspace_id": campaign.workspace_id,
                "campaign_id": campaign.id,
                "contact_id": cid,
                "email": f"r{cid}@example.com",
                "status": "queued",
            }
            for cid in contact_ids
        ],
    )


def start(session: Session, campaign: Campaign, at: datetime = T0) -> dict[str, int]:
    """Snapshot done: assign the variants and mark the campaign sending."""
    counts = split.assign_variants(session, campaign.id)
    campaign.status = "sending"
    campaign.started_at = at
    session.flush()
    return counts


def send_test(session: Session, campaign: Campaign, at: datetime = T0) -> None:
    """What the batches do to the test part of the ledger."""
    session.execute(
        update(Message)
        .where(Message.campaign_id == campaign.id, Message.status == "queued")
        .values(status="sent", sent_at=at)
        .execution_options(synchronize_session=False)
    )


def messages_of(session: Session, campaign: Campaign, label: str) -> list[int]:
    variant = next(v for v in campaign.variants if v.label == label)
    return list(
        session.scalars(
            select(Message.id)
            .where(Message.variant_id == variant.id, Message.ab_rest.is_(False))
            .order_by(Message.id)
        )
    )


def add_events(
    session: Session,
    campaign: Campaign,
    message_ids: list[int],
    type_: str,
    at: datetime = T0 + timedelta(hours=1),
    is_machine: bool = False,
) -> None:
    if not message_ids:
        return
    tag = next(_seq)
    contacts = dict(
        session.execute(
            select(Message.id, Message.contact_id).where(Message.id.in_(message_ids))
        ).all()
    )
    session.execute(
        insert(Event),
        [
            {
                "workspace_id": campaign.workspace_id,
                "campaign_id": campaign.id,
                "message_id": mid,
                "contact_id": contacts[mid],
                "type": type_,
                "occurred_at": at,
                "is_machine": is_machine,
                "data": {},
                "dedupe_key": f"{type_}-{tag}-{mid}",
            }
            for mid in message_ids
        ],
    )


def committed_test(winner_clicks: int = 40, loser_clicks: int = 15) -> int:
    """A committed two-variant test (200 + 200, 1,600 held), sent, with clicks."""
    with session_scope() as session:
        workspace = make_workspace(session)
        actor = actor_of(make_user(session, workspace, role="editor"))
        templates = make_templates(session, workspace)
        campaign = make_ab_campaign(session, actor, workspace, settings_for(templates))
        snapshot(session, campaign, make_contacts(session, workspace, 2000))
        start(session, campaign)
        send_test(session, campaign)
        add_events(session, campaign, messages_of(session, campaign, "A")[:loser_clicks], "click")
        add_events(session, campaign, messages_of(session, campaign, "B")[:winner_clicks], "click")
        return campaign.id


def rest_states(campaign_id: int) -> list[tuple]:
    with session_scope() as session:
        return session.execute(
            select(Message.status, Message.variant_id, func.count())
            .where(Message.campaign_id == campaign_id, Message.ab_rest.is_(True))
            .group_by(Message.status, Message.variant_id)
        ).all()
