"""Who receives a campaign: the audience definition, its count, and the ledger snapshot.

An audience is `{"all": bool, "list_ids": [...], "segment_id": id | None,
"contact_ids": [...], "resend_of": campaign id | None, "include_inactive": bool}`; the
parts are a union. Recipients are always subscribed contacts whose address is not
suppressed, one row per contact however many lists hold them; and, unless
`include_inactive`, not inactive by the sunset policy (core.contacts.sunset).
The snapshot writes the ledger with one INSERT … SELECT, so a million rows never pass
through Python.

`resend_of` (a resend to non-openers, core.campaigns.resend) is evaluated like every other
part when it is used, that is at the snapshot: the contacts who received that campaign
(sent, not bounced) with no human open and no click by then. Someone who opens between the
resend's creation and its start is therefore left out too.
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
from core.contacts.sunset import is_inactive
from core.infra.errors import ValidationFailed
from core.infra.permissions import Actor
from core.models import Campaign, Contact, Event, ListMembership, Message, Suppression, Workspace
from core.models.statuses import LEFT, ContactStatus

EMPTY: dict[str, Any] = {
    "all": False,
    "list_ids": [],
    "segment_id": None,
    "contact_ids": [],
    "resend_of": None,
    "include_inactive": False,
}


def _id(value: Any) -> int | None:
    return int(value) if value not in (None, "") else None


def normalize(audience: dict[str, Any] | None) -> dict[str, Any]:
    """The stored shape, with ints and no duplicates."""
    audience = audience or {}
    return {
        "all": bool(audience.get("all")),
        "list_ids": sorted({int(i) for i in audience.get("list_ids") or []}),
        "segment_id": _id(audience.get("segment_id")),
        "contact_ids": sorted({int(i) for i in audience.get("contact_ids") or []}),
        "resend_of": _id(audience.get("resend_of")),
        "include_inactive": bool(audience.get("include_inactive")),
    }


def is_empty(audience: dict[str, Any]) -> bool:
    a = normalize(audience)
    return not (a["all"] or a["list_ids"] or a["segment_id"] or a["contact_ids"] or a["resend_of"])


def non_openers(workspace_id: int, campaign_id: int) -> ColumnElement[bool]:
    """The contact received campaign `campaign_id` (sent, not bounced) and neither opened it
    as a person nor clicked: the report's definitions (opens and clicks from the workspace's
    tracking source, machine ones not counted)."""
    source = select(Workspace.tracking_source).where(Workspace.id == workspace_id).scalar_subquery()
    return and_(
        exists().where(
            Message.campaign_id == campaign_id,
            Message.contact_id == Contact.id,
            Message.status.in_(LEFT),
        ),
        # ix_event_campaign_type_contact: one index probe per type and contact.
        ~exists().where(
            Event.campaign_id == campaign_id,
            Event.contact_id == Contact.id,
            or_(
                Event.type == "bounce",
                and_(
                    Event.type.in_(("open", "click")),
                    Event.is_machine.is_(False),
                    Event.source == source,
                ),
            ),
        ),
    )


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
    if a["resend_of"]:
        parts.append(non_openers(workspace_id, a["resend_of"]))
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


def _active_unless(audience: dict[str, Any]) -> ColumnElement[bool]:
    """Inactive contacts (sunset policy) are left out unless the audience includes them."""
    return literal(True) if normalize(audience)["include_inactive"] else ~is_inactive()


def recipients_query(session: Session, workspace_id: int, audience: dict[str, Any]) -> Select:
    """SELECT id, email of every recipient, one row per contact."""
    return select(Contact.id, Contact.email).where(
        Contact.workspace_id == workspace_id,
        eligible(),
        _active_unless(audience),
        _chosen(session, workspace_id, audience),
    )


def count_recipients(session: Session, actor: Actor, audience: dict[str, Any]) -> dict[str, int]:
    """How many are chosen, how many of them will receive it, and how many of those who
    could are inactive (sunset policy: left out unless the audience includes them): one
    query.

    "recipients" is exactly what `snapshot` writes to the ledger (the same conditions),
    so the wizard's count is the number of messages a send starts with."""
    actor.require("read")
    ws = actor.workspace_id
    inactive = and_(eligible(), is_inactive())
    row = session.execute(
        select(
            func.count(),
            func.count(case((and_(eligible(), _active_unless(audience)), 1))),
            func.count(case((inactive, 1))),
        )
        .select_from(Contact)
        .where(Contact.workspace_id == ws, _chosen(session, ws, audience))
    ).one()
    return {
        "chosen": int(row[0] or 0),
        "recipients": int(row[1] or 0),
        "inactive": int(row[2] or 0),
    }


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
