"""The sunset policy: who has stopped reading, so campaigns stop spending reputation on them.

A contact is inactive when they received at least N campaigns (default 10) over at least D
days (default 120) without a human open or a click: counting only the campaign messages
sent after their last human open or click (or ever, if there is none), there are at least
N of them and the first is at least D days old. A human open or click from either tracking
source (our pixel and links, or SES) counts; machine opens and clicks (image proxies,
scanners, see core.ingest.store) do not, nor do automations' messages as campaigns.

- Marking: `recompute` sets `contact.inactive_since` for the workspace in one set-based
  UPDATE (beat runs it daily for every workspace: `recompute_all`), and clears it for
  contacts who no longer qualify (say, after the policy changed).
- Reactivation is prompt: when a human open or click is stored, `reactivate` clears the
  flag in the same transaction (core.ingest.store calls it), so the next campaign reaches
  them; the daily recompute would agree, since their unanswered count starts again.
- Campaigns leave inactive contacts out unless their audience says `include_inactive`
  (core.campaigns.audience); the built-in segment "Inactive contacts (sunset)" lists them
  for a re-engagement campaign, which includes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from core.infra import clock
from core.infra.errors import ValidationFailed
from core.infra.permissions import Actor
from core.models import Contact, Event, Message, Segment, SunsetPolicy, Workspace
from core.models.statuses import LEFT

DEFAULT_MIN_CAMPAIGNS = 10
DEFAULT_MIN_DAYS = 120
SEGMENT_NAME = "Inactive contacts (sunset)"
SEGMENT_RULES: dict[str, Any] = {
    "match": "all",
    "rules": [{"field": "inactive_since", "op": "is_not_empty"}],
}
ENGAGING = ("open", "click")


@dataclass(frozen=True)
class Policy:
    enabled: bool = True
    min_campaigns: int = DEFAULT_MIN_CAMPAIGNS
    min_days: int = DEFAULT_MIN_DAYS
    segment_id: int | None = None
    computed_at: datetime | None = None

    def sentence(self) -> str:
        """The policy as Settings states it."""
        if not self.enabled:
            return "Off: every subscribed contact receives campaigns."
        return (
            f"Contacts who received at least {self.min_campaigns} campaigns over at least "
            f"{self.min_days} days without a human open or a click are inactive."
        )


def is_inactive() -> ColumnElement[bool]:
    return Contact.inactive_since.is_not(None)


def human_engagement() -> ColumnElement[bool]:
    """An event that shows a person read the mail: an open or a click, not a machine's."""
    return and_(Event.type.in_(ENGAGING), Event.is_machine.is_(False))


def get_policy(session: Session, actor: Actor) -> Policy:
    actor.require("read")
    return _policy(session, actor.workspace_id)


def _policy(session: Session, workspace_id: int) -> Policy:
    row = session.get(SunsetPolicy, workspace_id)
    if row is None:
        return Policy()
    return Policy(
        row.enabled,
        row.min_campaigns,
        row.min_days,
        row.segment_id,
        clock.as_utc(row.computed_at),
    )


def save_policy(
    session: Session, actor: Actor, *, enabled: bool, min_campaigns: int, min_days: int
) -> Policy:
    """Settings (owners and admins). The flags follow at the next recompute (the page runs
    one right after saving)."""
    actor.require("admin")
    if not 1 <= int(min_campaigns) <= 1000:
        raise ValidationFailed("The number of campaigns must be between 1 and 1,000.")
    if not 1 <= int(min_days) <= 3650:
        raise ValidationFailed("The number of days must be between 1 and 3,650.")
    row = _row(session, actor.workspace_id)
    row.enabled = bool(enabled)
    row.min_campaigns = int(min_campaigns)
    row.min_days = int(min_days)
    session.flush()
    return _policy(session, actor.workspace_id)


def _row(session: Session, workspace_id: int) -> SunsetPolicy:
    row = session.get(SunsetPolicy, workspace_id)
    if row is None:
        row = SunsetPolicy(
            workspace_id=workspace_id,
            enabled=True,
            min_campaigns=DEFAULT_MIN_CAMPAIGNS,
            min_days=DEFAULT_MIN_DAYS,
        )
        session.add(row)
        session.flush()
    return row


def ensure_segment(session: Session, workspace_id: int) -> int:
    """The id of the workspace's built-in segment of inactive contacts (made if missing)."""
    row = _row(session, workspace_id)
    if row.segment_id is not None and session.get(Segment, row.segment_id) is not None:
        return row.segment_id
    taken = set(
        session.scalars(
            select(Segment.name).where(
                Segment.workspace_id == workspace_id, Segment.name.startswith(SEGMENT_NAME)
            )
        )
    )
    name, n = SEGMENT_NAME, 1
    while name in taken:
        n += 1
        name = f"{SEGMENT_NAME} {n}"
    segment = Segment(workspace_id=workspace_id, name=name, rules=SEGMENT_RULES)
    session.add(segment)
    session.flush()
    row.segment_id = segment.id
    return segment.id


def builtin_segment_id(session: Session, workspace_id: int) -> int | None:
    """The built-in segment's id, if it has been made (by a recompute or Settings)."""
    row = session.get(SunsetPolicy, workspace_id)
    return row.segment_id if row is not None else None


def count_inactive(session: Session, actor: Actor) -> int:
    actor.require("read")
    return int(
        session.scalar(
            select(func.count()).where(Contact.workspace_id == actor.workspace_id, is_inactive())
        )
        or 0
    )


def inactive_contacts_query(
    workspace_id: int, min_campaigns: int, min_days: int, at: datetime
) -> Any:
    """SELECT contact_id of everyone the policy calls inactive at `at` (a CTE-able select).

    Per contact: the campaign messages sent after their last human open or click; at least
    `min_campaigns` of them, the first at least `min_days` days before `at`."""
    last_engaged = (
        select(Event.contact_id.label("contact_id"), func.max(Event.occurred_at).label("at"))
        .where(
            Event.workspace_id == workspace_id,
            Event.contact_id.is_not(None),
            human_engagement(),
        )
        .group_by(Event.contact_id)
        .subquery("last_engaged")
    )
    return (
        select(Message.contact_id)
        .outerjoin(last_engaged, last_engaged.c.contact_id == Message.contact_id)
        .where(
            Message.workspace_id == workspace_id,
            Message.campaign_id.is_not(None),
            Message.status.in_(LEFT),
            Message.sent_at.is_not(None),
            or_(last_engaged.c.at.is_(None), Message.sent_at > last_engaged.c.at),
        )
        .group_by(Message.contact_id)
        .having(
            and_(
                func.count() >= min_campaigns,
                func.min(Message.sent_at) <= at - timedelta(days=min_days),
            )
        )
    )


def flip_statement(workspace_id: int, policy: Policy, at: datetime) -> Any:
    """The one UPDATE: contacts whose flag differs from the policy's verdict, found by a
    left join of the workspace's contacts to the qualifying ones (hash joins, no
    per-row subquery), get `at` (newly inactive) or NULL (active again)."""
    flagged = inactive_contacts_query(
        workspace_id, policy.min_campaigns, policy.min_days, at
    ).subquery("flagged")
    other = Contact.__table__.alias("c2")
    flips = (
        select(other.c.id.label("id"), flagged.c.contact_id.label("flagged"))
        .select_from(other.outerjoin(flagged, flagged.c.contact_id == other.c.id))
        .where(
            other.c.workspace_id == workspace_id,
            or_(
                and_(other.c.inactive_since.is_(None), flagged.c.contact_id.is_not(None)),
                and_(other.c.inactive_since.is_not(None), flagged.c.contact_id.is_(None)),
            ),
        )
        .subquery("flips")
    )
    contact = Contact.__table__.c
    return (
        update(Contact.__table__)
        .where(contact.id == flips.c.id)
        .values(
            inactive_since=case(
                (flips.c.flagged.is_(None), None),
                else_=literal(at, contact.inactive_since.type),
            ),
            updated_at=contact.updated_at,  # system state, not an edit of the contact
        )
    )


# PostgreSQL's plan for the flip, for this statement only. Both per-contact inputs come
# sorted by contact from partial indexes read alone (`ix_event_engaged`,
# `ix_message_campaign_left`), so merge joins and group aggregates stream them. Left to
# itself the planner hashes: at 1M contacts, 4M messages and 10.8M events that plan took
# 32 s against 13.6 s for the merged one on the same (loaded) machine (bench/analytics.py
# --sunset-only; EXPLAIN ANALYZE in the commit). No JIT: compiling took a second.
MERGED_PLAN = {
    "enable_hashjoin": "off",
    "enable_hashagg": "off",
    "jit": "off",
    "work_mem": "'64MB'",
}


@contextmanager
def merged_plan(session: Session) -> Iterator[None]:
    """MERGED_PLAN's settings (SET LOCAL) while the block runs; the defaults after it. (A
    failed block needs no reset: its transaction is rolled back, and SET LOCAL with it.)"""
    for name, value in MERGED_PLAN.items():
        session.execute(text(f"SET LOCAL {name} = {value}"))
    yield
    for name in MERGED_PLAN:
        session.execute(text(f"SET LOCAL {name} TO DEFAULT"))


def recompute(session: Session, workspace_id: int, at: datetime | None = None) -> dict[str, int]:
    """Mark and unmark the workspace's contacts by its policy: ONE set-based UPDATE.

    Only rows whose flag changes are written, so a contact keeps the date they became
    inactive. Returns {"inactive": how many now}. Flushes; the caller commits."""
    at = at or clock.now()
    ensure_segment(session, workspace_id)
    policy = _policy(session, workspace_id)
    contact = Contact.__table__.c
    if not policy.enabled:
        session.execute(
            update(Contact.__table__)
            .where(contact.workspace_id == workspace_id, contact.inactive_since.is_not(None))
            .values(inactive_since=None, updated_at=contact.updated_at)
        )
    else:
        if session.get_bind().dialect.name == "postgresql":
            with merged_plan(session):
                session.execute(flip_statement(workspace_id, policy, at))
        else:
            session.execute(flip_statement(workspace_id, policy, at))
    session.execute(
        update(SunsetPolicy).where(SunsetPolicy.workspace_id == workspace_id).values(computed_at=at)
    )
    inactive = int(
        session.scalar(
            select(func.count()).where(Contact.workspace_id == workspace_id, is_inactive())
        )
        or 0
    )
    return {"inactive": inactive}


def recompute_all(sessions: sessionmaker[Session], at: datetime | None = None) -> dict[int, int]:
    """Every workspace's recompute, one transaction each (beat, daily): {workspace: inactive}.

    Takes a session factory: it commits per workspace, so one big workspace's UPDATE does not
    hold the others'."""
    with sessions() as session:
        ids = list(session.scalars(select(Workspace.id).order_by(Workspace.id)))
    done: dict[int, int] = {}
    for workspace_id in ids:
        with sessions() as session, session.begin():
            done[workspace_id] = recompute(session, workspace_id, at)["inactive"]
    return done


def reactivate(db: Session | Connection, contact_ids: Iterable[int]) -> None:
    """A human open or click was just stored for these contacts: active again, at once."""
    ids = sorted({int(i) for i in contact_ids})
    if not ids:
        return
    contact = Contact.__table__.c
    db.execute(
        update(Contact.__table__)
        .where(contact.id.in_(ids), contact.inactive_since.is_not(None))
        .values(inactive_since=None, updated_at=contact.updated_at)
    )
