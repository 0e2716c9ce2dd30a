"""A/B settings: 2-5 variants, the test share, the winner rule and the wait, stored on a draft
campaign; AI subject suggestions."""

from __future__ import annotations

import secrets
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.infra.errors import MailwrightError, NotFound, ValidationFailed
from core.infra.permissions import Actor
from core.mail.compose import check_sender_name
from core.models import Campaign, Template, Variant
from core.models.statuses import CampaignStatus

MIN_VARIANTS, MAX_VARIANTS = 2, 5
LABELS = "ABCDE"
TEST_SHARES = (5, 50)  # percent of the audience; 100 means "compare only", nobody is held
WAIT_MINUTES = (60, 7 * 24 * 60)
WINNER_RULES = ("click", "open", "manual")


class AIUnavailable(MailwrightError):
    """The AI assistant is not installed or not configured."""


class VariantSettings(BaseModel):
    subject: str = Field(max_length=998)
    from_name: str = Field(default="", max_length=200)
    template_id: int | None = None

    @field_validator("subject")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("from_name")
    @classmethod
    def _one_line_name(cls, value: str) -> str:
        try:
            return check_sender_name(value)
        except ValidationFailed as exc:
            raise ValueError(str(exc)) from exc


class ABSettings(BaseModel):
    """What the wizard's A/B section produces."""

    variants: list[VariantSettings]
    test_share: int = 20
    winner_rule: Literal["click", "open", "manual"] = "click"
    wait_minutes: int = 240
    min_confidence: float = 0.9
    seed: int | None = None

    @field_validator("variants")
    @classmethod
    def _count(cls, value: list[VariantSettings]) -> list[VariantSettings]:
        if not MIN_VARIANTS <= len(value) <= MAX_VARIANTS:
            raise ValueError(
                f"An A/B test needs {MIN_VARIANTS} to {MAX_VARIANTS} variants, not {len(value)}."
            )
        return value

    @field_validator("test_share")
    @classmethod
    def _share(cls, value: int) -> int:
        if value != 100 and not TEST_SHARES[0] <= value <= TEST_SHARES[1]:
            raise ValueError(
                f"The test share must be {TEST_SHARES[0]}% to {TEST_SHARES[1]}% of the audience, "
                "or 100% to only compare the variants."
            )
        return value

    @field_validator("wait_minutes")
    @classmethod
    def _wait(cls, value: int) -> int:
        if not WAIT_MINUTES[0] <= value <= WAIT_MINUTES[1]:
            raise ValueError("The waiting time must be between 1 hour and 7 days.")
        return value

    @field_validator("min_confidence")
    @classmethod
    def _confidence(cls, value: float) -> float:
        if not 0.5 < value < 1:
            raise ValueError("The minimum confidence must be above 50% and below 100%.")
        return value

    @field_validator("seed")
    @classmethod
    def _seed(cls, value: int | None) -> int | None:
        if value is not None and not 0 < value < 2**63:
            raise ValueError("The seed must be a positive 63-bit number.")
        return value

    @model_validator(mode="after")
    def _variants_complete_and_distinct(self) -> ABSettings:
        seen: dict[tuple, str] = {}
        for label, variant in zip(LABELS, self.variants, strict=False):
            if not variant.subject:
                raise ValueError(f"Variant {label} has no subject.")
            if variant.template_id is None:
                raise ValueError(f"Variant {label} has no template.")
            key = (variant.subject, variant.from_name, variant.template_id)
            if key in seen:
                raise ValueError(
                    f"Variants {seen[key]} and {label} are identical: vary the subject, "
                    "the from name or the template."
                )
            seen[key] = label
        return self


def validate_settings(raw: dict[str, Any]) -> ABSettings:
    """Parse the wizard's settings dict, or raise ValidationFailed with readable reasons."""
    try:
        return ABSettings.model_validate(raw)
    except ValidationError as exc:
        reasons = []
        for error in exc.errors():
            message = str(error.get("msg", "")).removeprefix("Value error, ")
            where = ".".join(str(p) for p in error.get("loc", ()))
            reasons.append(message if error.get("type") == "value_error" else f"{where}: {message}")
        raise ValidationFailed(" ".join(reasons)) from None


def _campaign(session: Session, actor: Actor, campaign_id: int, lock: bool = False) -> Campaign:
    query = select(Campaign).where(
        Campaign.id == campaign_id, Campaign.workspace_id == actor.workspace_id
    )
    if lock:
        query = query.with_for_update()
    campaign = session.scalars(query).one_or_none()
    if campaign is None:
        raise NotFound(f"Campaign {campaign_id} does not exist in this workspace.")
    return campaign


def configure_ab_test(
    session: Session, actor: Actor, campaign_id: int, settings: dict[str, Any]
) -> Campaign:
    """Make a draft (or scheduled) campaign an A/B test: its variants and its winner rule."""
    actor.require("edit")
    parsed = validate_settings(settings)
    campaign = _campaign(session, actor, campaign_id, lock=True)
    if campaign.status not in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED):
        raise ValidationFailed(
            f"The A/B test of a campaign that is {campaign.status} cannot be changed."
        )
    # ABSettings has rejected any variant without a template.
    template_ids = {v.template_id for v in parsed.variants if v.template_id is not None}
    found = set(
        session.scalars(
            select(Template.id).where(
                Template.id.in_(template_ids), Template.workspace_id == actor.workspace_id
            )
        )
    )
    if missing := template_ids - found:
        raise ValidationFailed(f"Template {sorted(missing)[0]} does not exist in this workspace.")

    share = parsed.test_share / 100 / len(parsed.variants)
    campaign.variants.clear()
    session.flush()
    for label, variant in zip(LABELS, parsed.variants, strict=False):
        campaign.variants.append(
            Variant(
                label=label,
                subject=variant.subject,
                from_name=variant.from_name,
                template_id=variant.template_id,
                share=share,
            )
        )
    campaign.ab_test_share = parsed.test_share
    campaign.ab_winner_metric = parsed.winner_rule
    campaign.ab_wait_minutes = parsed.wait_minutes
    campaign.ab_min_confidence = parsed.min_confidence
    campaign.ab_seed = parsed.seed or campaign.ab_seed or secrets.randbits(62) + 1
    campaign.ab_winner_variant_id = None
    campaign.ab_decided_at = None
    campaign.ab_decision = {}
    session.flush()
    return campaign


def ab_settings(session: Session, actor: Actor, campaign_id: int) -> dict[str, Any] | None:
    """The campaign's A/B settings as the wizard edits them; None for a plain campaign."""
    actor.require("read")
    campaign = _campaign(session, actor, campaign_id)
    if len(campaign.variants) < MIN_VARIANTS:
        return None
    return {
        "variants": [
            {"subject": v.subject, "from_name": v.from_name, "template_id": v.template_id}
            for v in campaign.variants
        ],
        "test_share": campaign.ab_test_share,
        "winner_rule": campaign.ab_winner_metric,
        "wait_minutes": campaign.ab_wait_minutes,
        "min_confidence": campaign.ab_min_confidence,
        "seed": campaign.ab_seed or None,
    }


def suggest_subject_variants(
    session: Session, actor: Actor, subject: str, count: int = 4, template_id: int | None = None
) -> list[str]:
    """Alternative subject lines from the AI assistant, for the variants after A.

    The template's text (when given) tells the assistant what the email is about.
    """
    actor.require("edit")
    from core.content import ai  # the assistant is optional: imported only when asked for

    if not ai.is_configured():
        raise AIUnavailable("The AI assistant is not configured (OPENAI_API_KEY).")
    brief = f"Current subject: {subject.strip()}"
    if template_id is not None:
        template = session.scalar(
            select(Template).where(
                Template.id == template_id, Template.workspace_id == actor.workspace_id
            )
        )
        if template is not None:
            brief += "\n\n" + (template.text or template.html)[:4000]
    answer = ai.complete(actor, ai.Request("subjects", brief))
    fresh = [s for s in ai.parse_subjects(answer) if s.strip() != subject.strip()]
    return fresh[:count]


def remove_ab_test(session: Session, actor: Actor, campaign_id: int) -> Campaign:
    """Back to a plain campaign: variant A stays, for everyone."""
    actor.require("edit")
    campaign = _campaign(session, actor, campaign_id, lock=True)
    if campaign.status not in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED):
        raise ValidationFailed(
            f"The A/B test of a campaign that is {campaign.status} cannot be changed."
        )
    for variant in list(campaign.variants)[1:]:
        campaign.variants.remove(variant)
    if campaign.variants:
        campaign.variants[0].share = 1.0
    campaign.ab_test_share = 100
    campaign.ab_winner_variant_id = None
    campaign.ab_decided_at = None
    campaign.ab_decision = {}
    session.flush()
    return campaign
