"""Who receives a campaign: the audience definition, its count, and the ledger snapshot.

An audience is `{"all": bool, "list_ids": [...], "segment_id": id | None,
"contact_ids": [...]}`; the parts are a union. Recipients are always subscribed contacts
whose address is not suppressed, one row per contact however many lists hold them.
The snapshot writes the ledger with one INSERT … SELECT, so a million rows never pass
through Python.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    insert,
    literal,
    null,
    or_,
    select,
)
from sqlalchemy.orm import Session

from core.campaigns.split import assign_variants
from core.infra.errors import ValidationFailed
from core.infra.permissions import Actor
from core.models import Campaign, Contact, ListMembership, Message, Suppression
from core.models.statuses import ContactStatus

EMPTY: dict[str, Any] = {"all": False, "list_ids": [], "segment_id": None, "contact_ids": []}


def normalize(audience: dict[str, Any] | None) -> dict[str, Any]:
    """The stored shape, with ints and no duplicates."""
    audience = audience or {}
    segment = audience.get("segment_id")
    return {
        "all": bool(audience.get("all")),
        "list_ids": sorted({int(i) for i in audience.get("list_ids") or []}),
        "segment_id": int(segment) if segment not in (None, "") else None,
        "contact_ids": sorted({int(i) for i in audience.get("contact_ids") or []}),
    }


def is_empty(audience: dict[str, Any]) -> bool:
    a = normalize(audience)
    return not (a["all"] or a["list_ids"] or a["segment_id"] or a["contact_ids"])


def _chosen(session: Session, workspace_id: int, audience: dict[str, Any]) -> ColumnElement[bool]:
    a = normalize(audience)
    if a["all"]:
        return literal(True)
    parts: list[ColumnElement[bool]] = []
    if a["list_ids"]:
        parts.append(
            exists().where(
                ListMembership.contact_id == Contact.id,
                ListMembership.list_id.in_(a["list_ids"]),
            )
        )
    if a["segment_id"]:
        try:
            from core.segments import segment_condition
        except ImportError as exc:  # the segments module arrives with its own issue
            raise ValidationFailed("Segments are not available in this installation.") from exc
        parts.append(segment_condition(session, workspace_id, a["segment_id"]))
    if a["contact_ids"]:
        parts.append(Contact.id.in_(a["contact_ids"]))
    return or_(*parts) if parts else false()


def eligible() -> ColumnElement[bool]:
    """Subscribed and not suppressed (bounced and complained contacts are not subscribed)."""
    return and_(
        Contact.status == ContactStatus.SUBSCRIBED,
        ~exists().where(
            Suppression.workspace_id == Contact.workspace_id,
            Suppression.email == Contact.email,
        ),
    )


def recipients_query(session: Session, workspace_id: int, audience: dict[str, Any]) -> Select:
    """SELECT id, email of every recipient, one row per contact."""
    return select(Contact.id, Contact.email).where(
        Contact.workspace_id == workspace_id, eligible(), _chosen(session, workspace_id, audience)
    )


def count_recipients(session: Session, actor: Actor, audience: dict[str, Any]) -> dict[str, int]:
    """How many are chosen, and how many of them will receive it: one query.

    "recipients" is exactly what `snapshot` writes to the ledger (the same conditions),
    so the wizard's count is the number of messages a send starts with."""
    actor.require("read")
    ws = actor.workspace_id
    row = session.execute(
        select(func.count(), func.count(case((eligible(), 1))))
        .select_from(Contact)
        .where(Contact.workspace_id == ws, _chosen(session, ws, audience))
    ).one()
    return {"chosen": int(row[0] or 0), "recipients": int(row[1] or 0)}


def first_recipient(session: Session, actor: Actor, audience: dict[str, Any]) -> Contact | None:
    """The recipient with the lowest id: the sample a review renders for (None: nobody)."""
    actor.require("read")
    if is_empty(audience):
        return None
    query = recipients_query(session, actor.workspace_id, audience).with_only_columns(Contact)
    return session.scalars(query.order_by(Contact.id).limit(1)).first()


def sample_recipients(
    session: Session, actor: Actor, audience: dict[str, Any], limit: int = 20
) -> list[Contact]:
    """The first `limit` recipients by id, for "preview for" pickers."""
    actor.require("read")
    if is_empty(audience):
        return []
    query = recipients_query(session, actor.workspace_id, audience).with_only_columns(Contact)
    return list(session.scalars(query.order_by(Contact.id).limit(limit)))


def picked_contacts(session: Session, actor: Actor, contact_ids: list[int]) -> list[Contact]:
    """The workspace's contacts among `contact_ids` (one query), by email."""
    actor.require("read")
    ids = sorted({int(i) for i in contact_ids})
    if not ids:
        return []
    return list(
        session.scalars(
            select(Contact)
            .where(Contact.workspace_id == actor.workspace_id, Contact.id.in_(ids))
            .order_by(Contact.email)
        )
    )


def snapshot(session: Session, campaign: Campaign) -> int:
    """Write the campaign's ledger rows (idempotent: existing rows stay); returns the count.

    One variant: every row gets it. Several (A/B): `core.campaigns.split.assign_variants` shuffles
    the rows with the campaign's seed, gives each variant its share of the test, and holds
    the rest without a variant until a winner is known.
    """
    variants = list(campaign.variants)
    if not variants:
        raise ValidationFailed("The campaign has no content yet.")
    base = recipients_query(session, campaign.workspace_id, campaign.audience)
    ledger = select(func.count()).where(Message.campaign_id == campaign.id)
    rerun = session.scalar(select(exists().where(Message.campaign_id == campaign.id)))
    before = int(session.scalar(ledger) or 0) if rerun else 0
    ab = len(variants) > 1
    if not ab:
        variant: Any = literal(variants[0].id)
    else:
        # A/B: the rows arrive without a variant; core.campaigns.split splits them below.
        variant = cast(null(), Integer)
    status: Any = literal("queued")
    rows = base.add_columns(
        literal(campaign.workspace_id).label("workspace_id"),
        literal(campaign.id).label("campaign_id"),
        variant.label("variant_id"),
        status.label("status"),
    )
    sub = rows.subquery()
    # In contact order: the ledger's indexes then grow at their ends instead of at random.
    select_rows = select(
        sub.c.workspace_id, sub.c.campaign_id, sub.c.id, sub.c.variant_id, sub.c.email, sub.c.status
    ).order_by(sub.c.id)
    if rerun:
        # A re-run (a start task delivered twice): add only contacts not in the ledger yet.
        select_rows = select_rows.where(
            ~exists().where(Message.campaign_id == campaign.id, Message.contact_id == sub.c.id)
        )
    session.execute(
        insert(Message).from_select(
            ["workspace_id", "campaign_id", "contact_id", "variant_id", "email", "status"],
            select_rows,
        )
    )
    if ab:
        assign_variants(session, campaign.id)
    # rowcount is -1 for INSERT … SELECT through SQLAlchemy on psycopg: count instead (an
    # index-only count; a first run has nothing to subtract).
    return int(session.scalar(ledger) or 0) - before
