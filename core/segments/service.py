"""Segments as the pages and the CLI use them: counts, samples, the builder's options and
saved segments (create, update, duplicate, delete with its in-use guard)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    case,
    func,
    select,
)
from sqlalchemy.orm import Session

from core.contacts.fields import FieldInfo, all_fields
from core.infra.errors import NotFound, ValidationFailed
from core.infra.permissions import Actor
from core.models import (
    Campaign,
    Contact,
    ContactList,
    Segment,
)
from core.models.statuses import ContactStatus
from core.segments.compiler import _tune_for_counting, compile_rules
from core.segments.model import NAME_MAX, Group, dump_rules, validate_rules

# Campaign states in which a campaign will still resolve its audience: its segment stays.
CAMPAIGN_STATES_USING_SEGMENT = ("scheduled", "sending", "paused")


class SegmentInUse(ValidationFailed):
    """A segment that a scheduled or running campaign still needs."""


Group.model_rebuild()


@dataclass(frozen=True)
class CountResult:
    count: int
    seconds: float
    # Of `count`, signed up on a form and not confirmed yet: no campaign mails them.
    unconfirmed: int = 0


def count_matching(
    session: Session, actor: Actor, rules: Any, at: datetime | None = None
) -> CountResult:
    """How many of the workspace's contacts (any status) match, and how long the query took."""
    actor.require("read")
    _tune_for_counting(session)  # first: the compiler reads the session's hash memory
    condition = compile_rules(session, actor.workspace_id, rules, at)
    started = time.perf_counter()
    # The unconfirmed count rides on the same scan: one more aggregate, no second query.
    count, unconfirmed = session.execute(
        select(
            func.count(),
            func.count(case((Contact.status == ContactStatus.UNCONFIRMED, 1))),
        )
        .select_from(Contact)
        .where(Contact.workspace_id == actor.workspace_id, condition)
    ).one()
    return CountResult(int(count or 0), time.perf_counter() - started, int(unconfirmed or 0))


def sample_matching(
    session: Session, actor: Actor, rules: Any, limit: int = 20, at: datetime | None = None
) -> list[Contact]:
    """The first matching contacts by email, for a preview."""
    actor.require("read")
    _tune_for_counting(session)  # first: the compiler reads the session's hash memory
    condition = compile_rules(session, actor.workspace_id, rules, at)
    return list(
        session.scalars(
            select(Contact)
            .where(Contact.workspace_id == actor.workspace_id, condition)
            .order_by(Contact.email)
            .limit(limit)
        )
    )


def count_segment(session: Session, actor: Actor, segment_id: int) -> CountResult:
    return count_matching(session, actor, get_segment(session, actor, segment_id).rules)


@dataclass(frozen=True)
class BuilderOptions:
    """The fields (with types), lists and campaigns a rule may name, for pickers."""

    fields: list[FieldInfo]
    lists: list[tuple[int, str]]
    campaigns: list[tuple[int, str]]


def builder_options(session: Session, actor: Actor) -> BuilderOptions:
    actor.require("read")
    ws = actor.workspace_id
    lists = session.execute(
        select(ContactList.id, ContactList.name)
        .where(ContactList.workspace_id == ws)
        .order_by(ContactList.name)
    ).all()
    campaigns = session.execute(
        select(Campaign.id, Campaign.name)
        .where(Campaign.workspace_id == ws)
        .order_by(Campaign.created_at.desc(), Campaign.id.desc())
    ).all()
    return BuilderOptions(
        fields=all_fields(session, actor),
        lists=[(i, n) for i, n in lists],
        campaigns=[(i, n) for i, n in campaigns],
    )


def list_segments(session: Session, actor: Actor) -> list[Segment]:
    """The workspace's segments by name."""
    actor.require("read")
    return list(
        session.scalars(
            select(Segment).where(Segment.workspace_id == actor.workspace_id).order_by(Segment.name)
        )
    )


def get_segment(session: Session, actor: Actor, segment_id: int) -> Segment:
    actor.require("read")
    segment = session.get(Segment, segment_id)
    if segment is None or segment.workspace_id != actor.workspace_id:
        raise NotFound("No such segment in this workspace.")
    return segment


def _clean_name(session: Session, actor: Actor, name: str, exclude_id: int | None = None) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("A segment needs a name.")
    if len(name) > NAME_MAX:
        raise ValidationFailed(f"A segment name has at most {NAME_MAX} characters.")
    query = select(Segment.id).where(
        Segment.workspace_id == actor.workspace_id, Segment.name == name
    )
    if exclude_id is not None:
        query = query.where(Segment.id != exclude_id)
    if session.scalar(query) is not None:
        raise ValidationFailed(f"A segment named {name!r} already exists.")
    return name


def create_segment(session: Session, actor: Actor, name: str, rules: Any) -> Segment:
    actor.require("edit")
    group = validate_rules(session, actor.workspace_id, rules)
    segment = Segment(
        workspace_id=actor.workspace_id,
        name=_clean_name(session, actor, name),
        rules=dump_rules(group),
    )
    session.add(segment)
    session.flush()
    return segment


def update_segment(
    session: Session,
    actor: Actor,
    segment_id: int,
    name: str | None = None,
    rules: Any = None,
) -> Segment:
    actor.require("edit")
    segment = get_segment(session, actor, segment_id)
    if name is not None:
        segment.name = _clean_name(session, actor, name, exclude_id=segment.id)
    if rules is not None:
        segment.rules = dump_rules(validate_rules(session, actor.workspace_id, rules))
    session.flush()
    return segment


def duplicate_segment(session: Session, actor: Actor, segment_id: int) -> Segment:
    actor.require("edit")
    source = get_segment(session, actor, segment_id)
    names = set(
        session.scalars(select(Segment.name).where(Segment.workspace_id == actor.workspace_id))
    )
    name = f"{source.name} (copy)"
    counter = 2
    while name in names:
        name = f"{source.name} (copy {counter})"
        counter += 1
    return create_segment(session, actor, name[:NAME_MAX], source.rules)


def campaigns_using(session: Session, actor: Actor, segment_id: int) -> list[Campaign]:
    """Scheduled, sending or paused campaigns whose audience is this segment."""
    campaigns = session.scalars(
        select(Campaign).where(
            Campaign.workspace_id == actor.workspace_id,
            Campaign.status.in_(CAMPAIGN_STATES_USING_SEGMENT),
        )
    )
    return [c for c in campaigns if (c.audience or {}).get("segment_id") == segment_id]


def delete_segment(session: Session, actor: Actor, segment_id: int) -> None:
    actor.require("edit")
    segment = get_segment(session, actor, segment_id)
    users = campaigns_using(session, actor, segment_id)
    if users:
        names = ", ".join(repr(c.name) for c in users)
        raise SegmentInUse(
            f"Segment {segment.name!r} is the audience of {names} ({users[0].status}); "
            "change or cancel that campaign first."
        )
    session.delete(segment)
    session.flush()
