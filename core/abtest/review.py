"""What the wizard's review step says about an A/B test before it is sent: the settings,
each variant as a recipient will see it, how many each variant gets, and whether an
automatic winner is possible at all."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.abtest.settings import MIN_VARIANTS
from core.abtest.statistics import MIN_SAMPLE
from core.campaigns import audience as audiences
from core.campaigns import service as campaigns
from core.campaigns.split import split_sizes
from core.content.rendering import TemplateProblem, compile_template
from core.infra.permissions import Actor
from core.models import Template

RULE_NAMES = {"click": "click rate", "open": "human open rate", "manual": "manual pick"}


def per_variant_text(sizes: list[int]) -> str:
    """ "48 per variant", or "47 to 48 per variant" when the split is uneven by one."""
    low, high = min(sizes), max(sizes)
    return f"{low:,} per variant" if low == high else f"{low:,} to {high:,} per variant"


def sample_size_warning(recipients: int, test_share: int, variants: int, rule: str) -> str | None:
    """Why this split cannot give what the rule expects, or None when it can.

    The automatic winner needs `MIN_SAMPLE` recipients counted per variant
    (core.abtest.statistics.decide); the split is `core.campaigns.split.split_sizes`, the
    one sending uses, so the numbers here are the ones the test will start with."""
    if variants < MIN_VARIANTS or recipients <= 0:
        return None  # nobody chosen yet: the review says so among the reasons not to send
    sizes, _held = split_sizes(recipients, test_share, variants)
    if min(sizes) < 1:
        return (
            f"{per_variant_text(sizes)}: the test share of {recipients:,} recipients is too "
            f"small for {variants} variants, so sending would fail; raise the test share or "
            "choose more recipients."
        )
    if rule == "manual" or min(sizes) >= MIN_SAMPLE:
        return None
    fix = "choose more recipients" if test_share >= 100 else "raise the test share"
    return (
        f"{per_variant_text(sizes)}: below {MIN_SAMPLE}, no automatic winner will be declared; "
        f"{fix} or choose manual."
    )


def ab_review(session: Session, actor: Actor, campaign_id: int) -> dict[str, Any] | None:
    """The A/B test of a campaign as its review shows it; None for a plain campaign.

    Subjects are rendered (sandboxed, as sending does) for the first recipient, or for the
    placeholder contact when nobody is chosen yet; a variant that does not render carries
    its error instead."""
    campaign = campaigns.get_campaign(session, actor, campaign_id)
    variants = list(campaign.variants)
    if len(variants) < MIN_VARIANTS:
        return None
    recipients = audiences.count_recipients(session, actor, campaign.audience)["recipients"]
    sample = audiences.first_recipient(session, actor, campaign.audience)
    values = campaigns.sample_variables(session, campaign, sample)
    sizes, held = split_sizes(recipients, campaign.ab_test_share, len(variants))
    template_ids = [v.template_id for v in variants if v.template_id is not None]
    names = dict(
        session.execute(
            select(Template.id, Template.name).where(
                Template.workspace_id == actor.workspace_id, Template.id.in_(template_ids)
            )
        ).all()
    )
    rows = []
    for variant, size in zip(variants, sizes, strict=True):
        subject, _html, _text = campaigns.content_of(session, variant)
        row = {
            "id": variant.id,
            "label": variant.label,
            "subject": "",
            "error": "",
            "from_name": variant.from_name or campaign.from_name,
            "template": names.get(variant.template_id, "") if variant.template_id else "",
            "recipients": size,
        }
        try:
            row["subject"] = (
                compile_template(subject, "", None, footer=False).render(values).subject
            )
        except TemplateProblem as exc:
            row["error"] = str(exc)
        rows.append(row)
    return {
        "recipients": recipients,
        "test_share": campaign.ab_test_share,
        "winner_rule": campaign.ab_winner_metric,
        "rule_name": RULE_NAMES.get(campaign.ab_winner_metric, campaign.ab_winner_metric),
        "wait_minutes": campaign.ab_wait_minutes,
        "min_confidence": campaign.ab_min_confidence,
        "min_sample": MIN_SAMPLE,
        "held": held,
        "sample": sample.email if sample is not None else "",
        "variants": rows,
        "warning": sample_size_warning(
            recipients, campaign.ab_test_share, len(variants), campaign.ab_winner_metric
        ),
    }
