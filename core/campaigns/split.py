"""The A/B split of a campaign's ledger: which recipients get which variant, and who is held
for the winner.

Sending calls `assign_variants` right after the audience snapshot, in the same
transaction. It lives with campaigns, below `core.abtest` (which decides and releases):
the snapshot needs the split, and the A/B engine needs campaigns, not the other way round.
"""

from __future__ import annotations

import random
import secrets

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from core.infra.errors import NotFound, ValidationFailed
from core.models import Campaign, Message
from core.models.statuses import MessageStatus

_CHUNK = 5000


def split_sizes(audience: int, test_share: int, variants: int) -> tuple[list[int], int]:
    """How many recipients each variant gets, and how many are held for the winner."""
    test = audience if test_share >= 100 else (audience * test_share + 50) // 100
    base, extra = divmod(test, variants)
    return [base + (1 if i < extra else 0) for i in range(variants)], audience - test


def assign_variants(session: Session, campaign_id: int) -> dict[str, int]:
    """Give the snapshot's queued ledger rows their variant; hold the rest for the winner.

    Called by sending right after the audience snapshot, in the same transaction. The
    order is a shuffle of the recipients by contact id with the campaign's seed, so the
    same audience and seed always give the same split. Idempotent: once any row of the
    campaign has a variant or is held, the split stays; rows added later are held. Returns
    the counts per label, and "held".
    """
    campaign = session.scalars(
        select(Campaign).where(Campaign.id == campaign_id).with_for_update()
    ).one_or_none()
    if campaign is None:
        raise NotFound(f"Campaign {campaign_id} does not exist.")
    variants = list(campaign.variants)
    if not variants:
        raise ValidationFailed(f"Campaign {campaign.name!r} has no content (no variant).")
    if not campaign.ab_seed:
        campaign.ab_seed = secrets.randbits(62) + 1
    already = session.scalar(
        select(Message.id)
        .where(
            Message.campaign_id == campaign_id,
            (Message.variant_id.is_not(None)) | (Message.ab_rest.is_(True)),
        )
        .limit(1)
    )
    unassigned = and_(
        Message.campaign_id == campaign_id,
        Message.status == MessageStatus.QUEUED,
        Message.variant_id.is_(None),
    )
    if len(variants) == 1:
        session.execute(
            update(Message)
            .where(unassigned)
            .values(variant_id=variants[0].id)
            .execution_options(synchronize_session=False)
        )
        return _split_counts(session, campaign)

    if already is not None:
        # Split before; rows a re-run of the snapshot added since join the held rest.
        session.execute(
            update(Message)
            .where(unassigned)
            .values(status=MessageStatus.HELD, ab_rest=True)
            .execution_options(synchronize_session=False)
        )
        return _split_counts(session, campaign)
    ids = list(session.scalars(select(Message.id).where(unassigned).order_by(Message.contact_id)))
    sizes, _held = split_sizes(len(ids), campaign.ab_test_share, len(variants))
    if min(sizes) < 1:
        raise ValidationFailed(
            f"The test share of {len(ids)} recipients is too small for {len(variants)} variants."
        )
    random.Random(campaign.ab_seed).shuffle(ids)
    start = 0
    for variant, size in zip(variants, sizes, strict=True):
        chosen = ids[start : start + size]
        start += size
        for i in range(0, len(chosen), _CHUNK):
            session.execute(
                update(Message)
                .where(Message.id.in_(chosen[i : i + _CHUNK]))
                .values(variant_id=variant.id)
                .execution_options(synchronize_session=False)
            )
    # Everyone not drawn into the test is exactly the rows still without a variant.
    session.execute(
        update(Message)
        .where(unassigned)
        .values(status=MessageStatus.HELD, ab_rest=True)
        .execution_options(synchronize_session=False)
    )
    return _split_counts(session, campaign)


def _split_counts(session: Session, campaign: Campaign) -> dict[str, int]:
    labels = {v.id: v.label for v in campaign.variants}
    rows = session.execute(
        select(Message.variant_id, Message.ab_rest, func.count())
        .where(Message.campaign_id == campaign.id)
        .group_by(Message.variant_id, Message.ab_rest)
    ).all()
    counts = dict.fromkeys(labels.values(), 0) | {"held": 0}
    for variant_id, rest, n in rows:
        if rest:
            counts["held"] += n
        elif variant_id in labels:
            counts[labels[variant_id]] += n
    return counts
