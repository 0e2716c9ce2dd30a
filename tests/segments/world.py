"""Test data for segments: contacts, lists, campaigns and events in one workspace, mirrored
into a reference World."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.infra.permissions import Actor
from core.models import Campaign, Contact, ContactList, CustomField, Event, ListMembership
from core.segments import matching_query
from tests.helpers import make_workspace
from tests.segments.reference import World

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
CUSTOM = {"plan": "text", "score": "number", "vip": "boolean", "renewal": "date"}
_seq = itertools.count(1)


def seed_world(
    session: Session,
    contacts: list[dict[str, Any]],
    events: list[tuple[int, str, int, int]] = (),
    members: list[tuple[int, int]] = (),
    lists: int = 2,
    campaigns: int = 2,
) -> tuple[World, Actor, list[int], list[int]]:
    """A new workspace holding `contacts`; events are (contact index, type, campaign index,
    days ago) and members (list index, contact index). Returns the world, an actor, list ids
    and campaign ids."""
    workspace = make_workspace(session)
    for key, type_ in CUSTOM.items():
        session.add(CustomField(workspace_id=workspace.id, key=key, label=key.title(), type=type_))
    list_rows = [ContactList(workspace_id=workspace.id, name=f"L{i}") for i in range(lists)]
    campaign_rows = [
        Campaign(workspace_id=workspace.id, name=f"C{i}", status="sent") for i in range(campaigns)
    ]
    session.add_all(list_rows + campaign_rows)
    session.flush()
    world = World(workspace.id, NOW, dict(CUSTOM))
    rows = []
    for spec in contacts:
        spec = dict(spec)
        spec.setdefault("email", f"c{next(_seq)}@example.com")
        spec.setdefault("created_at", NOW - timedelta(days=10))
        spec.setdefault("updated_at", spec["created_at"])
        row = Contact(workspace_id=workspace.id, **spec)
        rows.append(row)
    session.add_all(rows)
    session.flush()
    for row in rows:
        world.contacts.append(
            {
                "id": row.id,
                **{k: getattr(row, k) for k in ("email", "first_name", "last_name", "company")},
                **{k: getattr(row, k) for k in ("city", "country", "phone", "status", "source")},
                "created_at": row.created_at,
                "updated_at": row.updated_at,
                "custom_fields": row.custom_fields,
            }
        )
    for contact_index, type_, campaign_index, days_ago in events:
        event = {
            "workspace_id": workspace.id,
            "contact_id": rows[contact_index].id,
            "campaign_id": campaign_rows[campaign_index].id,
            "type": type_,
            "occurred_at": NOW - timedelta(days=days_ago, hours=1),
        }
        session.add(Event(dedupe_key=f"k{next(_seq)}", **event))
        world.events.append(event)
    for list_index, contact_index in set(members):
        session.add(
            ListMembership(list_id=list_rows[list_index].id, contact_id=rows[contact_index].id)
        )
        world.memberships.add((list_rows[list_index].id, rows[contact_index].id))
    session.flush()
    actor = Actor.system(workspace.id)
    return world, actor, [r.id for r in list_rows], [r.id for r in campaign_rows]


def sql_matching(session: Session, workspace_id: int, rules: dict) -> set[int]:
    return set(session.scalars(matching_query(session, workspace_id, rules, at=NOW)))


def ids_of(session: Session, workspace_id: int) -> set[int]:
    return set(session.scalars(select(Contact.id).where(Contact.workspace_id == workspace_id)))
