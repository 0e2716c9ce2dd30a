"""A/B tests: variants, a seeded split of the audience, an honest winner, the rest released.

Lifecycle of an A/B campaign:

1. `configure_ab_test` (wizard) stores 2-5 variants and the rule on a draft campaign.
2. Sending snapshots the audience into the ledger, then calls `core.campaigns.split.assign_variants`: a seeded
   shuffle gives every variant its share of the test to within one recipient; the rest of
   the ledger is "held" (`Message.ab_rest`), with no variant.
3. Beat asks `due_ab_tests`; `evaluate_ab_test` computes per variant the metric's rate, a
   95% Wilson interval, the probability to be best (Beta(1+x, 1+n-x) posteriors, exact by
   numerical integration) and a pooled two-proportion z-test of the leader against the
   runner-up. The leader wins when every variant has `MIN_SAMPLE` recipients counted and
   its probability to be best reaches the campaign's minimum confidence (more than 50%,
   so a tie can never produce a winner: ties wait for the marketer).
4. `release_rest` hands the held rest to the winner with one conditional UPDATE
   (held -> queued), so it happens exactly once however often it runs; the worker then
   calls `core.sending.pipeline.dispatch_batches`. `choose_winner_manually` works at any time
   before the rest is sent.

Counting: a message counts as opened when it has a human (not machine) open or a click (a
click proves the open); as clicked when it has a human click. Rates are over messages
sent (`sent` or `uncertain`) minus those that bounced, so bounces do not punish a variant.
"""

from __future__ import annotations

import logging
import math
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from scipy import integrate
from scipy.stats import beta as beta_dist
from sqlalchemy import case, distinct, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.campaigns.dispatch import dispatch_batches
from core.infra import clock
from core.infra.db import rowcount
from core.infra.errors import MailwrightError, NotFound, ValidationFailed
from core.infra.jobs import enqueue
from core.infra.permissions import Actor
from core.mail.compose import check_sender_name
from core.models import Campaign, Event, Message, Template, Variant
from core.models.statuses import LEFT, CampaignStatus, MessageStatus

log = logging.getLogger(__name__)

LABELS = "ABCDE"
MIN_VARIANTS, MAX_VARIANTS = 2, 5
TEST_SHARES = (5, 50)  # percent of the audience; 100 means "compare only", nobody is held
WAIT_MINUTES = (60, 7 * 24 * 60)
WINNER_RULES = ("click", "open", "manual")
# Recipients counted (sent minus bounced) each variant needs before a winner is declared.
MIN_SAMPLE = 100
INTERVAL_LEVEL = 0.95
IN_FLIGHT = (MessageStatus.QUEUED, MessageStatus.SENDING)
RELEASE_TASK = "worker.tasks_abtest.release_ab_rest"
_CHUNK = 5000


class AIUnavailable(MailwrightError):
    """The AI assistant is not installed or not configured."""


# ---------------------------------------------------------------------------- settings


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


# ---------------------------------------------------------------------------- statistics


def wilson_interval(successes: int, trials: int, level: float = INTERVAL_LEVEL) -> list[float]:
    """Wilson score interval for a proportion; [0, 1] when nothing was observed."""
    if trials <= 0:
        return [0.0, 1.0]
    successes = min(max(successes, 0), trials)
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return [max(0.0, centre - half), min(1.0, centre + half)]


def two_proportion_p_value(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided pooled z-test of p1 == p2 (the same as a 2x2 chi-square without correction).

    When the pooled rate is 0 or 1 (no difference can be observed) the p-value is 1.
    """
    if n1 <= 0 or n2 <= 0:
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / math.sqrt(variance)
    return min(1.0, 2 * NormalDist().cdf(-abs(z)))


def probability_best(counts: list[tuple[int, int]], points: int = 4001) -> list[float]:
    """P(variant i has the highest true rate) under independent Beta(1+x, 1+n-x) posteriors.

    Exact up to quadrature error (< 1e-6): P_i = integral of pdf_i(p) * prod_j cdf_j(p),
    by Simpson's rule over the range where posterior i has mass.
    """
    if not counts:
        return []
    params = [(1 + x, 1 + max(n - x, 0)) for x, n in counts]
    result = []
    for i, (a, b) in enumerate(params):
        lo, hi = beta_dist.ppf([1e-12, 1 - 1e-12], a, b)
        grid = np.linspace(lo, hi, points)
        integrand = beta_dist.pdf(grid, a, b)
        for j, (aj, bj) in enumerate(params):
            if j != i:
                integrand = integrand * beta_dist.cdf(grid, aj, bj)
        result.append(float(integrate.simpson(integrand, x=grid)))
    total = sum(result)
    return [r / total for r in result] if total > 0 else [1 / len(counts)] * len(counts)


@dataclass
class VariantFigures:
    """One variant's (or the rest's, or the total's) counts and rates."""

    recipients: int = 0
    sent: int = 0
    delivered: int = 0
    bounced: int = 0
    opens: int = 0
    clicks: int = 0

    @property
    def base(self) -> int:
        return max(self.sent - self.bounced, 0)

    def rate(self, metric: str) -> float:
        return self.hits(metric) / self.base if self.base else 0.0

    def hits(self, metric: str) -> int:
        # Capped: a message can bounce softly and still be clicked; a rate never passes 1.
        return min(self.clicks if metric == "click" else self.opens, self.base)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["base"] = self.base
        for metric, name in (("open", "open"), ("click", "click")):
            data[f"{name}_rate"] = self.rate(metric)
            data[f"{name}_ci"] = wilson_interval(self.hits(metric), self.base)
        return data


def rule_metric(rule: str) -> str:
    """The metric a rule ranks by; manual mode shows the click rate as the default view."""
    return "open" if rule == "open" else "click"


def decide(
    labels: list[str],
    figures: list[VariantFigures],
    rule: str,
    min_confidence: float,
    min_sample: int = MIN_SAMPLE,
) -> dict[str, Any]:
    """The decision on constructed or measured figures: leader, runner-up, winner and why."""
    metric = rule_metric(rule)
    name = "click rate" if metric == "click" else "human open rate"
    probs = probability_best([(f.hits(metric), f.base) for f in figures])
    # Leader: highest probability to be best; exact ties keep the earlier label.
    order = sorted(range(len(labels)), key=lambda i: (-round(probs[i], 9), i))
    lead, second = order[0], order[1]
    lf, sf = figures[lead], figures[second]
    p_value = two_proportion_p_value(lf.hits(metric), lf.base, sf.hits(metric), sf.base)
    tie = lf.hits(metric) * sf.base == sf.hits(metric) * lf.base
    decision: dict[str, Any] = {
        "metric": metric,
        "rule": rule,
        "min_confidence": min_confidence,
        "min_sample": min_sample,
        "probability_best": dict(zip(labels, probs, strict=True)),
        "rates": {label: f.rate(metric) for label, f in zip(labels, figures, strict=True)},
        "bases": {label: f.base for label, f in zip(labels, figures, strict=True)},
        "leader": labels[lead],
        "runner_up": labels[second],
        "p_value": p_value,
        "winner": None,
        "outcome": "",
        "reason": "",
    }
    small = [
        (label, f.base) for label, f in zip(labels, figures, strict=True) if f.base < min_sample
    ]
    detail = (
        f"{name} {lf.rate(metric):.1%} for {labels[lead]} vs {sf.rate(metric):.1%} for "
        f"{labels[second]} (two-proportion test p = {p_value:.3g})"
    )
    if rule == "manual":
        decision["outcome"] = "manual"
        decision["reason"] = (
            f"Manual mode: pick the variant to send to the rest. Leader {labels[lead]} has "
            f"{probs[lead]:.1%} probability to be best; {detail}."
        )
    elif small:
        label, base = small[0]
        decision["outcome"] = "too_few"
        decision["reason"] = (
            f"Too few recipients to decide: variant {label} has {base} counted, at least "
            f"{min_sample} per variant are needed. Pick a variant to send to the rest."
        )
    elif tie:
        decision["outcome"] = "tie"
        decision["reason"] = (
            f"Tie: {labels[lead]} and {labels[second]} have the same {name} "
            f"({lf.rate(metric):.1%}). Pick a variant to send to the rest."
        )
    elif probs[lead] >= min_confidence:
        decision["outcome"] = "winner"
        decision["winner"] = labels[lead]
        decision["reason"] = (
            f"{labels[lead]} wins with {probs[lead]:.1%} probability to be best on {name} "
            f"(needed {min_confidence:.0%}); {detail}."
        )
    else:
        decision["outcome"] = "not_significant"
        decision["reason"] = (
            f"Not significant: the leader {labels[lead]} has {probs[lead]:.1%} probability to be "
            f"best on {name}, {min_confidence:.0%} is needed; {detail}. "
            "Pick a variant to send to the rest, or wait for more data."
        )
    return decision


# ---------------------------------------------------------------------------- figures


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


# ---------------------------------------------------------------------------- lifecycle


def wait_ends_at(campaign: Campaign) -> datetime | None:
    """When the test's waiting time ends: counted from the start of sending."""
    started = clock.as_utc(campaign.started_at)
    return started + timedelta(minutes=campaign.ab_wait_minutes) if started else None


def _variant_count():
    return (
        select(func.count())
        .select_from(Variant)
        .where(Variant.campaign_id == Campaign.id)
        .scalar_subquery()
    )


def _test_in_flight(session: Session, campaign_id: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Message)
            .where(
                Message.campaign_id == campaign_id,
                Message.status.in_(IN_FLIGHT),
                Message.ab_rest.is_(False),
            )
        )
        or 0
    )


def _is_due(session: Session, campaign: Campaign, now: datetime) -> bool:
    ends = wait_ends_at(campaign)
    return (
        ends is not None
        and ends <= now
        and campaign.ab_decided_at is None
        and campaign.ab_winner_variant_id is None
        and len(campaign.variants) >= MIN_VARIANTS
        and _test_in_flight(session, campaign.id) == 0
    )


def due_ab_tests(session: Session, now: datetime | None = None) -> list[int]:
    """Ids of A/B campaigns whose wait is over, test fully sent, and not yet evaluated."""
    now = now or clock.now()
    candidates = session.scalars(
        select(Campaign)
        .where(
            Campaign.status.in_((CampaignStatus.SENDING, CampaignStatus.SENT)),
            Campaign.started_at.is_not(None),
            Campaign.ab_decided_at.is_(None),
            Campaign.ab_winner_variant_id.is_(None),
            _variant_count() >= MIN_VARIANTS,
        )
        .order_by(Campaign.id)
    ).all()
    return [c.id for c in candidates if _is_due(session, c, now)]


def pending_releases(session: Session) -> list[int]:
    """Ids of campaigns with a winner whose held rest is not released yet (a sweep)."""
    held = (
        select(Message.id)
        .where(Message.campaign_id == Campaign.id, Message.status == MessageStatus.HELD)
        .exists()
    )
    return list(
        session.scalars(
            select(Campaign.id)
            .where(
                Campaign.ab_winner_variant_id.is_not(None),
                Campaign.status.in_(
                    (CampaignStatus.SENDING, CampaignStatus.SENT, CampaignStatus.PAUSED)
                ),
                held,
            )
            .order_by(Campaign.id)
        )
    )


def evaluate_ab_test(
    session: Session, campaign_id: int, now: datetime | None = None
) -> dict[str, Any] | None:
    """Decide the test when it is due: stores the decision (and the winner, if any).

    Returns the decision, the stored one if it was already made, or None when not due.
    """
    now = now or clock.now()
    campaign = session.scalars(
        select(Campaign).where(Campaign.id == campaign_id).with_for_update()
    ).one_or_none()
    if campaign is None:
        raise NotFound(f"Campaign {campaign_id} does not exist.")
    if campaign.ab_decided_at is not None:
        return campaign.ab_decision
    if not _is_due(session, campaign, now):
        return None
    variants = list(campaign.variants)
    decision = decide(
        [v.label for v in variants],
        _test_figures(campaign, _figures(session, campaign.id)),
        campaign.ab_winner_metric,
        campaign.ab_min_confidence,
    )
    decision |= {"how": "auto", "decided_at": now.isoformat()}
    winner = next((v for v in variants if v.label == decision["winner"]), None)
    campaign.ab_decision = decision
    campaign.ab_decided_at = now
    campaign.ab_winner_variant_id = winner.id if winner else None
    session.flush()
    return decision


def choose_winner_manually(
    session: Session, actor: Actor, campaign_id: int, variant_id: int, now: datetime | None = None
) -> Campaign:
    """The marketer's pick: allowed at any time until a winner exists (so before the rest goes)."""
    actor.require("edit")
    now = now or clock.now()
    campaign = _campaign(session, actor, campaign_id)
    variant = next((v for v in campaign.variants if v.id == variant_id), None)
    if variant is None or len(campaign.variants) < MIN_VARIANTS:
        raise ValidationFailed("Pick one of this A/B test's variants.")
    if campaign.status in (CampaignStatus.CANCELLED, CampaignStatus.FAILED):
        raise ValidationFailed(f"The campaign is {campaign.status}; nothing more can be sent.")
    if campaign.started_at is None:
        raise ValidationFailed("The test has not started yet: send the campaign first.")
    decision = dict(campaign.ab_decision or {})
    if not decision:
        variants = list(campaign.variants)
        decision = decide(
            [v.label for v in variants],
            _test_figures(campaign, _figures(session, campaign.id)),
            campaign.ab_winner_metric,
            campaign.ab_min_confidence,
        )
    decision |= {
        "how": "manual",
        "winner": variant.label,
        "chosen_by": actor.email or f"user {actor.user_id}",
        "decided_at": now.isoformat(),
        "manual_reason": f"{variant.label} was chosen by {actor.email or 'a user'}.",
    }
    # Conditional: an automatic decision or another user may have picked first.
    result = session.execute(
        update(Campaign)
        .where(Campaign.id == campaign.id, Campaign.ab_winner_variant_id.is_(None))
        .values(ab_winner_variant_id=variant.id, ab_decided_at=now, ab_decision=decision)
        .execution_options(synchronize_session=False)
    )
    session.refresh(campaign)
    if rowcount(result) != 1:
        chosen = next(
            (v.label for v in campaign.variants if v.id == campaign.ab_winner_variant_id), "?"
        )
        raise ValidationFailed(f"Variant {chosen} has already been chosen as the winner.")
    if campaign.status in (CampaignStatus.SENDING, CampaignStatus.SENT, CampaignStatus.PAUSED):
        enqueue(session, RELEASE_TASK, campaign.id)
    return campaign


def release_rest(session: Session, campaign_id: int, now: datetime | None = None) -> int:
    """Queue the held rest with the winner's variant; how many rows this call released.

    One conditional UPDATE (held -> queued): a second call, or a concurrent one (it waits
    for the first's row locks, then finds nothing held), releases nothing.
    """
    now = now or clock.now()
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"Campaign {campaign_id} does not exist.")
    if campaign.ab_winner_variant_id is None:
        raise ValidationFailed("No winner has been chosen yet.")
    result = session.execute(
        update(Message)
        .where(Message.campaign_id == campaign_id, Message.status == MessageStatus.HELD)
        .values(status="queued", variant_id=campaign.ab_winner_variant_id, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    released = rowcount(result) or 0
    if released:
        decision = dict(campaign.ab_decision or {})
        decision["rest_released_at"] = now.isoformat()
        decision["rest_released"] = decision.get("rest_released", 0) + released
        campaign.ab_decision = decision
        session.flush()
    return released


# ---------------------------------------------------------------------------- report


def _trend(
    session: Session, campaign: Campaign, figures: list[VariantFigures]
) -> list[dict[str, Any]]:
    """Cumulative human open and click rates per variant, hour by hour since the start."""
    started = clock.as_utc(campaign.started_at)
    if started is None:
        return []
    first = func.min(Event.occurred_at)
    rows = session.execute(
        select(Message.variant_id, Event.type, Event.message_id, first)
        .join(Message, Message.id == Event.message_id)
        .where(
            Event.campaign_id == campaign.id,
            Message.campaign_id == campaign.id,
            Message.ab_rest.is_(False),
            Event.type.in_(("open", "click")),
            Event.is_machine.is_(False),
        )
        .group_by(Message.variant_id, Event.type, Event.message_id)
    ).all()
    if not rows:
        return []
    # An open is the first open or click of a message; a click its first click.
    # Keyed by (variant id, message id), both nullable columns.
    first_open: dict[tuple[int | None, int | None], datetime] = {}
    first_click: dict[tuple[int | None, int | None], datetime] = {}
    for variant_id, type_, message_id, at in rows:
        at = clock.as_utc(at)
        key = (variant_id, message_id)
        if type_ == "click":
            first_click[key] = at
        if key not in first_open or at < first_open[key]:
            first_open[key] = at
    last = max(first_open.values())
    hours = min(max(int((last - started).total_seconds() // 3600) + 1, 1), 24 * 14)
    points = []
    for index, variant in enumerate(campaign.variants):
        base = figures[index].base
        opens = [0] * hours
        clicks = [0] * hours
        for bucket_of, target in ((first_open, opens), (first_click, clicks)):
            for (variant_id, _m), at in bucket_of.items():
                if variant_id == variant.id:
                    hour = int(max((at - started).total_seconds(), 0) // 3600)
                    target[min(hour, hours - 1)] += 1
        cum_opens = cum_clicks = 0
        for hour in range(hours):
            cum_opens += opens[hour]
            cum_clicks += clicks[hour]
            points.append(
                {
                    "variant": variant.label,
                    "hour": hour + 1,
                    "opens": cum_opens,
                    "clicks": cum_clicks,
                    "open_rate": cum_opens / base if base else 0.0,
                    "click_rate": cum_clicks / base if base else 0.0,
                }
            )
    return points


def ab_report(
    session: Session, actor: Actor, campaign_id: int, now: datetime | None = None
) -> dict[str, Any]:
    """Everything the A/B report shows, as plain data (the UI renders it as it is)."""
    actor.require("read")
    now = now or clock.now()
    campaign = _campaign(session, actor, campaign_id)
    variants = list(campaign.variants)
    figures = _figures(session, campaign.id)
    test = _test_figures(campaign, figures)
    rest = _sum([f for (_v, is_rest), f in figures.items() if is_rest])
    totals = _sum(list(figures.values()))
    is_ab = len(variants) >= MIN_VARIANTS
    report: dict[str, Any] = {
        "campaign_id": campaign.id,
        "name": campaign.name,
        "status": campaign.status,
        "is_ab": is_ab,
        "rule": campaign.ab_winner_metric,
        "metric": rule_metric(campaign.ab_winner_metric),
        "test_share": campaign.ab_test_share,
        "wait_minutes": campaign.ab_wait_minutes,
        "min_confidence": campaign.ab_min_confidence,
        "interval_level": INTERVAL_LEVEL,
        "wait_ends_at": None,
        "variants": [],
        "live": None,
        "decision": dict(campaign.ab_decision or {}),
        "winner": None,
        "summary": "",
        "held": figures.get((None, True), VariantFigures()).recipients,
        "rest": rest.as_dict(),
        "totals": totals.as_dict(),
        "trend": [],
        "can_choose_winner": False,
    }
    if not is_ab:
        report["summary"] = "This campaign is not an A/B test."
        return report
    ends = wait_ends_at(campaign)
    report["wait_ends_at"] = ends.isoformat() if ends else None
    live = decide(
        [v.label for v in variants], test, campaign.ab_winner_metric, campaign.ab_min_confidence
    )
    report["live"] = live
    probs = live["probability_best"]
    winner = next((v for v in variants if v.id == campaign.ab_winner_variant_id), None)
    for variant, fig in zip(variants, test, strict=True):
        row = fig.as_dict() | {
            "id": variant.id,
            "label": variant.label,
            "subject": variant.subject,
            "from_name": variant.from_name or campaign.from_name,
            "template_id": variant.template_id,
            "probability_best": probs[variant.label],
            "is_leader": variant.label == live["leader"],
            "is_winner": winner is not None and variant.id == winner.id,
        }
        report["variants"].append(row)
    report["trend"] = _trend(session, campaign, test)
    decision = report["decision"]
    if winner is not None:
        how = decision.get("how", "auto")
        why = decision.get("manual_reason") if how == "manual" else decision.get("reason")
        report["winner"] = {"variant_id": winner.id, "label": winner.label, "how": how}
        released = decision.get("rest_released_at")
        tail = (
            f" The rest ({decision.get('rest_released', 0)}) was released on {released}."
            if released
            else (" The rest is being released." if report["held"] else "")
        )
        report["summary"] = f"Winner: {winner.label} ({how}). {why}{tail}"
    elif campaign.ab_decided_at is not None:
        report["summary"] = decision.get("reason", "")
    elif ends is None:
        report["summary"] = "The test has not started yet."
    elif now < ends:
        report["summary"] = (
            f"The test is running; it is evaluated at {ends:%Y-%m-%d %H:%M} UTC. "
            f"So far: {live['reason']}"
        )
    else:
        report["summary"] = "The waiting time is over; the test is evaluated shortly."
    report["can_choose_winner"] = (
        winner is None
        and campaign.status not in (CampaignStatus.CANCELLED, CampaignStatus.FAILED)
        and actor.can("edit")
        and campaign.started_at is not None
    )
    return report


# ------------------------------------------------------------------------ beat's round


def release_and_dispatch(sessions: sessionmaker[Session], campaign_id: int) -> int:
    """Release the held rest and queue its batches in one transaction (all or nothing),
    its own: it takes a session factory."""
    with sessions.begin() as session:
        released = release_rest(session, campaign_id)
        if released:
            dispatch_batches(session, campaign_id)
        return released


def run_due_tests(sessions: sessionmaker[Session]) -> dict[str, int]:
    """Decide every due test, then release the rest of every test with a winner.

    A sweep rather than a chain of steps: a crash between deciding and releasing is
    repaired on the next round. One broken campaign does not stop the others. One
    transaction per campaign, its own: it takes a session factory."""
    with sessions.begin() as session:
        due = due_ab_tests(session, clock.now())
    decided = 0
    for campaign_id in due:
        try:
            with sessions.begin() as session:
                decision = evaluate_ab_test(session, campaign_id, clock.now())
        except Exception:
            log.exception("A/B campaign %s: evaluation failed", campaign_id)
            continue
        if decision is not None:
            decided += 1
            log.info("A/B campaign %s: %s", campaign_id, decision.get("reason"))
    with sessions.begin() as session:
        pending = pending_releases(session)
    released = sum(release_and_dispatch(sessions, campaign_id) for campaign_id in pending)
    return {"due": len(due), "decided": decided, "released": released}
