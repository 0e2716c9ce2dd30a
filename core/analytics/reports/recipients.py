"""A campaign's recipients, a page at a time and as CSV (cells neutralised for
spreadsheets)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from core.analytics.reports.campaign import _campaign, _tracking_source
from core.contacts.export import neutralize
from core.infra.clock import as_utc
from core.infra.permissions import Actor
from core.models import Campaign, Event, Message
from core.models.statuses import LEFT


@dataclass
class RecipientRow:
    """One recipient. `delivered` agrees with the report's delivered figure: a delivery
    event, or, when the transport reports no deliveries (outbox, SMTP) and the figure is
    estimated as sent minus bounced, sent and not bounced."""

    email: str
    status: str
    sent_at: datetime | None
    delivered: bool = False
    opens: int = 0
    clicks: int = 0
    bounce: str = ""
    complained: bool = False
    unsubscribed: bool = False
    error: str = ""


# Column headings of the recipients table, in a marketer's words.
RECIPIENT_LABELS = {
    "email": "Email",
    "status": "Status",
    "sent_at": "Sent at (UTC)",
    "delivered": "Delivered",
    "opens": "Opens",
    "clicks": "Clicks",
    "bounce": "Bounce",
    "complained": "Marked as spam",
    "unsubscribed": "Unsubscribed",
    "error": "Error",
}


def delivery_is_estimated(session: Session, campaign_id: int) -> bool:
    """True when no delivery event exists for the campaign: the report then estimates
    delivered as sent minus bounced (core.analytics.reports.campaign), and so do the rows."""
    reported = select(Event.id).where(Event.campaign_id == campaign_id, Event.type == "delivered")
    return not session.scalar(select(reported.exists()))


def _recipient_filter(campaign_id: int, search: str, status: str | None) -> list:
    conds = [Message.campaign_id == campaign_id]
    if search.strip():
        conds.append(Message.email.like(f"%{search.strip().lower()}%"))
    if status:
        conds.append(Message.status == status)
    return conds


def _activity(session: Session, campaign_id: int, source: str, message_ids: list[int]) -> dict:
    activity: dict[int, dict[str, Any]] = {mid: {} for mid in message_ids}
    if not message_ids:
        return activity
    counted = or_(
        Event.type.notin_(("open", "click")),
        and_(Event.source == source, Event.is_machine.is_(False)),
    )
    rows = session.execute(
        select(Event.message_id, Event.type, func.max(Event.bounce_type), func.count())
        .where(Event.campaign_id == campaign_id, Event.message_id.in_(message_ids), counted)
        .group_by(Event.message_id, Event.type)
    ).all()
    for mid, type_, bounce_type, n in rows:
        assert mid is not None  # the IN (message_ids) above matches no NULL
        activity[mid][type_] = (n, bounce_type)
    return activity


def _to_rows(session: Session, campaign: Campaign, messages: Sequence[Any]) -> list[RecipientRow]:
    source = _tracking_source(session, campaign.workspace_id) or "own"
    activity = _activity(session, campaign.id, source, [m[0] for m in messages])
    estimated = bool(messages) and delivery_is_estimated(session, campaign.id)
    out = []
    for mid, email, status, sent_at, error in messages:
        act = activity.get(mid, {})
        sent_not_bounced = status in LEFT and "bounce" not in act
        delivered = sent_not_bounced if estimated else "delivered" in act
        out.append(
            RecipientRow(
                email=email,
                status=status,
                sent_at=as_utc(sent_at),
                delivered=delivered,
                opens=act.get("open", (0, None))[0],
                clicks=act.get("click", (0, None))[0],
                bounce=(act["bounce"][1] or "soft") if "bounce" in act else "",
                complained="complaint" in act,
                unsubscribed="unsubscribe" in act,
                error=error or "",
            )
        )
    return out


def recipients_page(
    session: Session,
    actor: Actor,
    campaign_id: int,
    search: str = "",
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
    known_total: int | None = None,
) -> tuple[list[RecipientRow], int]:
    """One page of recipients with their activity, and how many match in all.

    `known_total` (the report's recipient count) saves counting again when nothing filters."""
    campaign = _campaign(session, actor, campaign_id)
    conds = _recipient_filter(campaign.id, search, status)
    if known_total is not None and not search.strip() and not status:
        total = known_total
    else:
        total = session.scalar(select(func.count()).select_from(Message).where(*conds)) or 0
    messages = session.execute(
        select(Message.id, Message.email, Message.status, Message.sent_at, Message.error)
        .where(*conds)
        .order_by(Message.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return _to_rows(session, campaign, messages), total


RECIPIENT_COLUMNS = [
    "email",
    "status",
    "sent_at",
    "delivered",
    "opens",
    "clicks",
    "bounce",
    "complained",
    "unsubscribed",
    "error",
]


def recipients_csv(
    session: Session,
    actor: Actor,
    campaign_id: int,
    search: str = "",
    status: str | None = None,
    chunk: int = 5000,
) -> str:
    """Every matching recipient with activity as CSV (the export), read in id order."""
    campaign = _campaign(session, actor, campaign_id)
    conds = _recipient_filter(campaign.id, search, status)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(RECIPIENT_COLUMNS)
    last_id = 0
    while True:
        messages = session.execute(
            select(Message.id, Message.email, Message.status, Message.sent_at, Message.error)
            .where(*conds, Message.id > last_id)
            .order_by(Message.id)
            .limit(chunk)
        ).all()
        if not messages:
            break
        last_id = messages[-1][0]
        for row in _to_rows(session, campaign, messages):
            values = asdict(row)
            values["sent_at"] = row.sent_at.isoformat() if row.sent_at else ""
            # Same escaping as the contacts export: a cell never runs as a formula.
            cells = ("" if values[c] is None else str(values[c]) for c in RECIPIENT_COLUMNS)
            writer.writerow([neutralize(cell) for cell in cells])
    return buf.getvalue()
