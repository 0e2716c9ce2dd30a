"""Resend to non-openers: a follow-up of a sent campaign to those who did not open it.

The resend is a new campaign linked to its parent (`parent_campaign_id`): the parent's
content (the A/B winner's when there was one), a new subject, and the audience
`{"resend_of": parent}`, which the sending pipeline evaluates at its snapshot like any
other audience (core.campaigns.audience.non_openers): contacts who received the parent
(sent, not bounced) with no human open and no click, minus anyone unsubscribed or
suppressed since, and inactive contacts (sunset policy) unless included. It starts as a
draft with a proposed time (48 hours after the parent's first send, or five minutes from
now when that has passed); `create_resend(..., schedule=True)` schedules it at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.campaigns import audience as audiences
from core.campaigns import service as campaigns
from core.infra import clock
from core.infra.errors import ValidationFailed
from core.infra.permissions import Actor
from core.models import Campaign, Message, Template, Variant
from core.models.statuses import LEFT, Action, allowed

RESEND_DELAY = timedelta(hours=48)
# A proposed time already past moves to this far from now (time to look before it goes).
SOON = timedelta(minutes=5)
NAME_SUFFIX = " (resend to non-openers)"


@dataclass(frozen=True)
class ResendPlan:
    """What the resend form shows before anything is created."""

    parent_id: int
    parent_name: str
    subject: str
    first_sent_at: datetime | None
    proposed_at: datetime
    non_openers: int  # who would receive it if it started now
    inactive_left_out: int  # of those, inactive by the sunset policy (left out)


def _parent(session: Session, actor: Actor, parent_id: int) -> Campaign:
    parent = campaigns.get_campaign(session, actor, parent_id)
    verdict = allowed(Action.RESEND, parent.status)
    if not verdict:
        raise ValidationFailed(f"{verdict.reason} This one is {parent.status}.")
    return parent


def _content_variant(parent: Campaign) -> Variant:
    """The variant everyone should have had: the A/B winner, else the first."""
    if parent.ab_winner_variant_id is not None:
        for variant in parent.variants:
            if variant.id == parent.ab_winner_variant_id:
                return variant
    if not parent.variants:
        raise ValidationFailed("The campaign has no content to send again.")
    return parent.variants[0]


def first_send(session: Session, campaign: Campaign) -> datetime | None:
    """When the campaign's first message left (its start when no message records it)."""
    first = session.scalar(
        select(func.min(Message.sent_at)).where(
            Message.campaign_id == campaign.id, Message.status.in_(LEFT)
        )
    )
    return clock.as_utc(first) or clock.as_utc(campaign.started_at)


def proposed_time(first_sent_at: datetime | None) -> datetime:
    """48 hours after the first send, or five minutes from now if that has passed."""
    soon = clock.now() + SOON
    if first_sent_at is None:
        return soon
    return max(first_sent_at + RESEND_DELAY, soon)


def plan_resend(session: Session, actor: Actor, parent_id: int) -> ResendPlan:
    parent = _parent(session, actor, parent_id)
    first = first_send(session, parent)
    subject = _content_variant(parent).subject
    counts = audiences.count_recipients(session, actor, {"resend_of": parent.id})
    return ResendPlan(
        parent.id,
        parent.name,
        subject,
        first,
        proposed_time(first),
        counts["recipients"],
        counts["inactive"],
    )


def create_resend(
    session: Session,
    actor: Actor,
    parent_id: int,
    subject: str = "",
    at: datetime | None = None,
    *,
    schedule: bool = False,
) -> Campaign:
    """A new campaign for the parent's non-openers: a draft proposed for `at` (default:
    `proposed_time`), or scheduled then with `schedule=True`. `subject` defaults to the
    parent's."""
    actor.require("edit")
    parent = _parent(session, actor, parent_id)
    source = _content_variant(parent)
    subject = subject.strip() or source.subject
    if at is not None and at.tzinfo is None:
        raise ValidationFailed("A schedule needs a time zone.")
    when = at or proposed_time(first_send(session, parent))
    html, text = source.html, source.text
    if not html and source.template_id is not None:
        template = session.get(Template, source.template_id)
        if template is not None and template.workspace_id == actor.workspace_id:
            html, text = template.html, template.text
    resend = campaigns.create_campaign(session, actor, _name(parent.name))
    for field in ("from_name", "from_email", "reply_to", "track_opens", "track_clicks"):
        setattr(resend, field, getattr(parent, field))
    resend.parent_campaign_id = parent.id
    resend.audience = audiences.normalize({"resend_of": parent.id})
    resend.variants.clear()
    # The parent's content as it was sent (its snapshot), not the template as it is now.
    resend.variants.append(
        Variant(
            label="A",
            subject=subject,
            from_name=source.from_name,
            template_id=source.template_id,
            html=html,
            text=text,
        )
    )
    campaigns.update_setup(
        session,
        actor,
        resend.id,
        name=resend.name,
        subject=subject,
        from_name=resend.from_name,
        from_email=resend.from_email,
        reply_to=resend.reply_to,
        track_opens=resend.track_opens,
        track_clicks=resend.track_clicks,
    )
    session.flush()
    if schedule:
        campaigns.schedule(session, actor, resend.id, when)
    else:
        resend.scheduled_at = when.astimezone(clock.now().tzinfo)  # proposed, not scheduled
    return resend


def _name(parent_name: str) -> str:
    return (parent_name[: 200 - len(NAME_SUFFIX)] + NAME_SUFFIX).strip()


def suggest_subjects(session: Session, actor: Actor, parent_id: int, count: int = 4) -> list[str]:
    """New subject lines from the AI assistant (raises AssistantUnavailable without a key)."""
    from core.content import ai  # optional: only when asked for

    actor.require("edit")
    parent = _parent(session, actor, parent_id)
    source = _content_variant(parent)
    if not ai.is_configured():
        raise ai.AssistantUnavailable(ai.HOW_TO_ENABLE)
    brief = (
        "These people did not open the first send of this email; suggest subject lines that "
        f"give it a second chance. The first subject was: {source.subject.strip()}"
    )
    body = source.text or source.html
    if body:
        brief += "\n\n" + body[:4000]
    answer = ai.complete(actor, ai.Request("subjects", brief))
    fresh = [s for s in ai.parse_subjects(answer) if s.strip() != source.subject.strip()]
    return fresh[:count]


def resends_of(session: Session, actor: Actor, campaign_id: int) -> list[Campaign]:
    """The campaign's resends, oldest first."""
    actor.require("read")
    return list(
        session.scalars(
            select(Campaign)
            .where(
                Campaign.workspace_id == actor.workspace_id,
                Campaign.parent_campaign_id == campaign_id,
            )
            .order_by(Campaign.id)
        )
    )
