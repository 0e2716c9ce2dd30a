"""Per-variant figures of a test, read from the ledger and the events."""

from __future__ import annotations

from sqlalchemy import case, distinct, func, select
from sqlalchemy.orm import Session

from core.abtest.statistics import VariantFigures
from core.models import Campaign, Event, Message
from core.models.statuses import LEFT


def _figures(session: Session, campaign_id: int) -> dict[tuple[int | None, bool], VariantFigures]:
    """Counts per (variant id, is rest) from the ledger and the events."""
    out: dict[tuple[int | None, bool], VariantFigures] = {}
    sent = case((Message.status.in_(LEFT), 1), else_=0)
    for variant_id, rest, recipients, n_sent in session.execute(
        select(Message.variant_id, Message.ab_rest, func.count(), func.sum(sent))
        .where(Message.campaign_id == campaign_id)
        .group_by(Message.variant_id, Message.ab_rest)
    ):
        out[(variant_id, bool(rest))] = VariantFigures(recipients=recipients, sent=n_sent or 0)

    human = Event.is_machine.is_(False)

    def distinct_messages(condition):
        return func.count(distinct(case((condition, Event.message_id))))

    rows = session.execute(
        select(
            Message.variant_id,
            Message.ab_rest,
            distinct_messages(Event.type == "delivered"),
            distinct_messages(Event.type == "bounce"),
            distinct_messages(((Event.type == "open") & human) | ((Event.type == "click") & human)),
            distinct_messages((Event.type == "click") & human),
        )
        .join(Message, Message.id == Event.message_id)
        .where(
            Event.campaign_id == campaign_id,
            Message.campaign_id == campaign_id,
            Event.type.in_(("delivered", "bounce", "open", "click")),
        )
        .group_by(Message.variant_id, Message.ab_rest)
    )
    for variant_id, rest, delivered, bounced, opens, clicks in rows:
        figures = out.setdefault((variant_id, bool(rest)), VariantFigures())
        figures.delivered, figures.bounced = delivered, bounced
        figures.opens, figures.clicks = opens, clicks
    return out


def _sum(parts: list[VariantFigures]) -> VariantFigures:
    total = VariantFigures()
    for part in parts:
        for field in ("recipients", "sent", "delivered", "bounced", "opens", "clicks"):
            setattr(total, field, getattr(total, field) + getattr(part, field))
    return total


def _test_figures(
    campaign: Campaign, figures: dict[tuple[int | None, bool], VariantFigures]
) -> list[VariantFigures]:
    return [figures.get((v.id, False), VariantFigures()) for v in campaign.variants]
