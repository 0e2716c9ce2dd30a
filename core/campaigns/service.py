"""Campaigns: drafts, the wizard's steps, scheduling, and the controls while sending.

The pipeline itself (snapshot, batches, transports) is in core/sending/pipeline.py; this module is
what a marketer (the UI or the CLI) does to a campaign. About 740 lines on purpose: every
action here goes through the same two checks (`_editable`, `_require` against the one
transition table), and splitting the list from the actions would split those.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from core.campaigns import audience as audiences
from core.campaigns import waves
from core.campaigns.dispatch import dispatch_batches
from core.contacts import sunset
from core.content.rendering import (
    STANDARD_VARIABLES,
    SYSTEM_VARIABLES,
    Rendered,
    TemplateProblem,
    compile_template,
    contact_variables,
)
from core.deliverability import guard, standing
from core.infra import clock, jobs
from core.infra.db import fold, like_escape, rowcount
from core.infra.errors import NotFound, ValidationFailed
from core.infra.permissions import Actor
from core.mail.compose import check_sender_address, check_sender_name
from core.models import (
    AuditLog,
    Campaign,
    Contact,
    ContactList,
    CustomField,
    Event,
    ListMembership,
    Message,
    Template,
    Variant,
    Workspace,
)
from core.models.statuses import (
    PENDING,
    POSSIBLE_DUPLICATE,
    Action,
    CampaignStatus,
    MessageStatus,
    allowed,
)

START_TASK = "worker.tasks_sending.start_campaign"

log = logging.getLogger(__name__)


class CampaignNotSendable(ValidationFailed):
    """The campaign lacks something it needs to go out; the message lists what."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("This campaign cannot be sent yet: " + "; ".join(problems))
        self.problems = problems


@dataclass
class CampaignRow:
    id: int
    name: str
    status: str
    subject: str
    created_at: datetime
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    recipients: int
    queued: int
    sent: int
    failed: int
    error: str
    held: int = 0
    # Before the snapshot (a scheduled campaign) `recipients` is the audience's count now,
    # an estimate; from the start of sending it is the ledger's.
    estimated: bool = False
    # A time-zone campaign's waves: "sending in waves: 3 of 7 sent, next 09:00 IST ..."
    waves: str = ""

    @property
    def progress(self) -> float:
        done = self.sent + self.failed
        return done / self.recipients if self.recipients else 0.0

    @property
    def unsent(self) -> int:
        """Messages a cancel would stop: waiting, in flight, or held for an A/B winner."""
        return self.queued + self.held

    @property
    def live(self) -> bool:
        """Worth watching: sending, or due to start within the hour."""
        if self.status == CampaignStatus.SENDING:
            return True
        soon = clock.now() + timedelta(hours=1)
        return (
            self.status == CampaignStatus.SCHEDULED
            and self.scheduled_at is not None
            and self.scheduled_at <= soon
        )


def get_campaign(session: Session, actor: Actor, campaign_id: int) -> Campaign:
    actor.require("read")
    campaign = session.get(Campaign, campaign_id)
    if campaign is None or campaign.workspace_id != actor.workspace_id:
        raise NotFound("No such campaign in this workspace.")
    return campaign


def message_counts(session: Session, campaign_ids: list[int]) -> dict[int, dict[str, int]]:
    """Ledger rows per status for each campaign (one grouped query)."""
    counts: dict[int, dict[str, int]] = {cid: {} for cid in campaign_ids}
    if not campaign_ids:
        return counts
    rows = session.execute(
        select(Message.campaign_id, Message.status, func.count())
        .where(Message.campaign_id.in_(campaign_ids))
        .group_by(Message.campaign_id, Message.status)
    )
    for cid, status, n in rows:
        if cid is not None:  # never: the IN above; automations' messages have no campaign
            counts[cid][status] = int(n)
    return counts


def summarize(counts: dict[str, int]) -> dict[str, int]:
    """recipients, queued (waiting or in flight), sent, failed, cancelled, held."""
    return {
        "recipients": sum(counts.values()),
        "queued": sum(counts.get(s, 0) for s in ("queued", "sending", "uncertain")),
        "sent": counts.get("sent", 0),
        "failed": counts.get("failed", 0),
        "cancelled": counts.get("cancelled", 0),
        "held": counts.get("held", 0),
    }


def campaign_status(session: Session, actor: Actor, campaign_id: int) -> dict[str, Any]:
    """Status and counts, as the CLI prints them and the list shows them."""
    campaign = get_campaign(session, actor, campaign_id)
    counts = summarize(message_counts(session, [campaign.id])[campaign.id])
    counts["uncertain"] = int(
        session.scalar(
            select(func.count()).where(
                Message.campaign_id == campaign.id, Message.error.startswith(POSSIBLE_DUPLICATE)
            )
        )
        or 0
    )
    return {"id": campaign.id, "status": campaign.status, "error": campaign.error, **counts}


def list_campaigns(
    session: Session,
    actor: Actor,
    search: str = "",
    statuses: list[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[CampaignRow]:
    """The workspace's campaigns, newest first, with their ledger counts."""
    actor.require("read")
    query = select(Campaign).where(Campaign.workspace_id == actor.workspace_id)
    if search.strip():
        pattern = f"%{like_escape(search.strip())}%"
        query = query.where(fold(Campaign.name).like(fold(pattern), escape="\\"))
    if statuses:
        query = query.where(Campaign.status.in_(statuses))
    if since is not None:
        query = query.where(Campaign.created_at >= since)
    if until is not None:
        query = query.where(Campaign.created_at < until)
    campaigns = list(
        session.scalars(query.order_by(Campaign.created_at.desc(), Campaign.id.desc()))
    )
    counts = message_counts(session, [c.id for c in campaigns])
    rows = []
    for c in campaigns:
        s = summarize(counts[c.id])
        estimate = _estimate(session, actor, c) if not s["recipients"] else None
        if estimate is not None:
            s["recipients"] = estimate
        rows.append(
            CampaignRow(
                id=c.id,
                name=c.name,
                status=c.status,
                subject=c.variants[0].subject if c.variants else "",
                created_at=c.created_at,
                # A draft's time is only a proposal (a resend's): not shown as scheduled.
                scheduled_at=None
                if c.status == CampaignStatus.DRAFT
                else clock.as_utc(c.scheduled_at),
                started_at=clock.as_utc(c.started_at),
                finished_at=clock.as_utc(c.finished_at),
                recipients=s["recipients"],
                queued=s["queued"],
                sent=s["sent"],
                failed=s["failed"],
                error=c.error,
                held=s["held"],
                estimated=estimate is not None,
                waves=_waves_text(session, actor, c),
            )
        )
    return rows


def _waves_text(session: Session, actor: Actor, campaign: Campaign) -> str:
    """The list's line about a time-zone campaign's waves ("" for any other, and for a
    draft, a failed or a cancelled one: its status says more)."""
    shown = (CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.PAUSED)
    if not campaign.local_send_time or campaign.status not in (*shown, CampaignStatus.SENT):
        return ""
    try:
        found = waves.campaign_waves(session, actor, campaign.id)
    except ValidationFailed:  # a scheduled audience that cannot be counted any more
        return ""
    if campaign.status == CampaignStatus.SCHEDULED and found:
        first = found[0]
        return f"in {len(found)} wave{'s' if len(found) != 1 else ''}, first {first.label}"
    return waves.waves_summary(found, paused=campaign.status == CampaignStatus.PAUSED)


def _estimate(session: Session, actor: Actor, campaign: Campaign) -> int | None:
    """A scheduled campaign's recipients as its audience stands now (the wizard's review
    count), until the snapshot at its start takes over; None for any other campaign, or
    when the audience cannot be counted (say, its segment was deleted)."""
    if campaign.status != CampaignStatus.SCHEDULED or audiences.is_empty(campaign.audience):
        return None
    try:
        return audiences.count_recipients(session, actor, campaign.audience)["recipients"]
    except ValidationFailed:
        return None


def create_campaign(session: Session, actor: Actor, name: str) -> Campaign:
    """A draft with the workspace's sender and one variant."""
    actor.require("edit")
    if not name.strip():
        raise ValidationFailed("Give the campaign a name.")
    workspace = session.get(Workspace, actor.workspace_id)
    campaign = Campaign(
        workspace_id=actor.workspace_id,
        name=name.strip(),
        status=CampaignStatus.DRAFT,
        audience=dict(audiences.EMPTY),
        from_name=workspace.from_name if workspace else "",
        from_email=workspace.from_email if workspace else "",
        reply_to=workspace.reply_to if workspace else "",
        created_by_id=actor.user_id,
    )
    campaign.variants.append(Variant(label="A", subject=""))
    session.add(campaign)
    session.flush()
    return campaign


def _editable(session: Session, actor: Actor, campaign_id: int) -> Campaign:
    actor.require("edit")
    campaign = get_campaign(session, actor, campaign_id)
    _require(Action.EDIT, campaign)
    return campaign


def _require(action: Action, campaign: Campaign) -> None:
    """Raise with the transition table's reason unless `action` applies to `campaign`."""
    verdict = allowed(action, campaign.status)
    if not verdict:
        raise ValidationFailed(f"{verdict.reason} This one is {campaign.status}.")


def update_setup(
    session: Session,
    actor: Actor,
    campaign_id: int,
    *,
    name: str,
    subject: str,
    from_name: str,
    from_email: str,
    reply_to: str = "",
    track_opens: bool = True,
    track_clicks: bool = True,
) -> Campaign:
    """Wizard step 1."""
    campaign = _editable(session, actor, campaign_id)
    if not name.strip():
        raise ValidationFailed("Give the campaign a name.")
    if subject.strip():
        compile_template(subject, "", "")  # TemplateProblem names the error
    from_name = check_sender_name(from_name)
    from_email = check_sender_address(from_email, "from")
    reply_to = check_sender_address(reply_to, "reply-to")
    campaign.name = name.strip()
    campaign.from_name = from_name
    campaign.from_email = from_email
    campaign.reply_to = reply_to
    campaign.track_opens = track_opens
    campaign.track_clicks = track_clicks
    # Variant A carries the campaign's subject; an A/B test's other variants keep theirs.
    for variant in campaign.variants[:1]:
        variant.subject = subject.strip()
    return campaign


def update_audience(
    session: Session, actor: Actor, campaign_id: int, audience: dict[str, Any]
) -> Campaign:
    """Wizard step 2: all subscribed contacts, lists, a segment, or chosen contacts."""
    campaign = _editable(session, actor, campaign_id)
    audience = audiences.normalize(audience)
    ws = actor.workspace_id
    if audience["list_ids"]:
        found = session.scalars(
            select(ContactList.id).where(
                ContactList.workspace_id == ws, ContactList.id.in_(audience["list_ids"])
            )
        ).all()
        if len(found) != len(audience["list_ids"]):
            raise NotFound("One of the chosen lists does not exist in this workspace.")
    if audience["contact_ids"]:
        found = session.scalar(
            select(func.count()).where(
                Contact.workspace_id == ws, Contact.id.in_(audience["contact_ids"])
            )
        )
        if found != len(audience["contact_ids"]):
            raise NotFound("One of the chosen contacts does not exist in this workspace.")
    # The built-in segment of inactive contacts (sunset policy) is for reaching them.
    builtin = sunset.builtin_segment_id(session, ws)
    if builtin is not None and audience["segment_id"] == builtin:
        audience["include_inactive"] = True
    campaign.audience = audience
    return campaign


def update_template(session: Session, actor: Actor, campaign_id: int, template_id: int) -> Campaign:
    """Wizard step 3: the content; the subject defaults to the template's."""
    campaign = _editable(session, actor, campaign_id)
    template = session.get(Template, template_id)
    if template is None or template.workspace_id != actor.workspace_id:
        raise NotFound("No such template in this workspace.")
    for variant in campaign.variants[:1]:
        variant.template_id = template.id
        if not variant.subject:
            variant.subject = template.subject
    return campaign


def template_choices(session: Session, actor: Actor) -> list[tuple[int, str, str]]:
    """(id, name, subject) of the workspace's templates, newest first."""
    actor.require("read")
    rows = session.execute(
        select(Template.id, Template.name, Template.subject)
        .where(Template.workspace_id == actor.workspace_id)
        .order_by(Template.updated_at.desc(), Template.id.desc())
    )
    return [(i, n, s) for i, n, s in rows]


def list_choices(session: Session, actor: Actor) -> list[tuple[int, str, int]]:
    """(id, name, members) of the workspace's lists."""
    actor.require("read")
    members = (
        select(func.count())
        .where(ListMembership.list_id == ContactList.id)
        .correlate(ContactList)
        .scalar_subquery()
    )
    rows = session.execute(
        select(ContactList.id, ContactList.name, members)
        .where(ContactList.workspace_id == actor.workspace_id)
        .order_by(ContactList.name)
    )
    return [(i, n, int(m)) for i, n, m in rows]


def segment_choices(session: Session, actor: Actor) -> list[tuple[int, str]] | None:
    """(id, name) of the segments, or None when the segments module is not installed."""
    try:
        from core.segments import list_segments
    except ImportError:
        return None
    return [(s.id, s.name) for s in list_segments(session, actor)]


def variable_names(session: Session, actor: Actor) -> list[str]:
    """What a subject or template may use, for the wizard's variables list."""
    keys = session.scalars(
        select(CustomField.key).where(CustomField.workspace_id == actor.workspace_id)
    ).all()
    return [*STANDARD_VARIABLES, *(f"custom_fields.{k}" for k in keys), *SYSTEM_VARIABLES]


def content_of(session: Session, variant: Variant) -> tuple[str, str, str | None]:
    """(subject, html, text): the snapshot once sending started, else the template's."""
    if variant.html:
        return variant.subject, variant.html, variant.text
    template = session.get(Template, variant.template_id) if variant.template_id else None
    if template is None:
        return variant.subject, "", None
    return variant.subject or template.subject, template.html, template.text


def sample_variables(session: Session, campaign: Campaign, contact: Contact | None) -> dict:
    from core.ingest import tracking

    workspace = session.get(Workspace, campaign.workspace_id)
    return contact_variables(
        contact or {"email": "someone@example.com"},
        workspace_name=workspace.name if workspace else "",
        postal_address=workspace.postal_address if workspace else "",
        campaign_name=campaign.name,
        # Previews and test sends: a test link, never one that unsubscribes the contact
        # the preview was rendered for (a test mail gets forwarded and clicked).
        unsubscribe_url=tracking.unsubscribe_url_of_test_send(campaign.workspace_id),
        preferences_url=tracking.preferences_url_of_test_send(campaign.workspace_id),
    )


def preview(
    session: Session,
    actor: Actor,
    campaign_id: int,
    contact_id: int | None = None,
    template_id: int | None = None,
    variant_id: int | None = None,
) -> Rendered:
    """The campaign (its first variant, or `variant_id`) rendered for one contact (or a
    placeholder), optionally with another template (the wizard previews a choice before it
    is saved)."""
    campaign = get_campaign(session, actor, campaign_id)
    contact = None
    if contact_id is not None:
        contact = session.get(Contact, contact_id)
        if contact is None or contact.workspace_id != actor.workspace_id:
            raise NotFound("No such contact in this workspace.")
    wanted = campaign.variants[0].id if variant_id is None else variant_id
    variant = next((v for v in campaign.variants if v.id == wanted), None)
    if variant is None:
        raise NotFound("No such variant in this campaign.")
    subject, html, text = content_of(session, variant)
    if template_id is not None:
        template = session.get(Template, template_id)
        if template is None or template.workspace_id != actor.workspace_id:
            raise NotFound("No such template in this workspace.")
        subject, html, text = subject or template.subject, template.html, template.text
    return compile_template(subject, html, text).render(
        sample_variables(session, campaign, contact)
    )


def problems(session: Session, actor: Actor, campaign: Campaign) -> list[str]:
    """Why this campaign cannot be sent (empty when it can)."""
    found: list[str] = []
    variant = campaign.variants[0] if campaign.variants else None
    subject, html, text = content_of(session, variant) if variant else ("", "", None)
    if not subject.strip():
        found.append("it has no subject")
    if not html.strip():
        found.append("it has no template")
    if not campaign.from_email:
        found.append("it has no from address (set one in step 1 or in Settings)")
    if audiences.is_empty(campaign.audience):
        found.append("no recipients are chosen")
    elif audiences.count_recipients(session, actor, campaign.audience)["recipients"] == 0:
        found.append(
            "none of the chosen contacts can receive it (unsubscribed, suppressed, or inactive "
            "and not included)"
        )
    if subject.strip() and html.strip():
        try:
            first = audiences.first_recipient(session, actor, campaign.audience)
            compile_template(subject, html, text).render(sample_variables(session, campaign, first))
        except TemplateProblem as exc:
            found.append(f"the template does not render ({exc})")
    return found


def send_now(
    session: Session,
    actor: Actor,
    campaign_id: int,
    override_guard: bool = False,
    local_time: str | None = None,
) -> Campaign:
    """Start sending as soon as a worker takes it (beat picks it up too if the task is lost);
    with `local_time` ("09:00"), in waves from now as each contact's zone reaches it.

    While the workspace's last 30 days are at or above an SES review level, only an owner
    sends, with `override_guard` (recorded: core.deliverability.standing)."""
    return schedule(
        session,
        actor,
        campaign_id,
        clock.now(),
        _now=True,
        override_guard=override_guard,
        local_time=local_time,
    )


def schedule(
    session: Session,
    actor: Actor,
    campaign_id: int,
    when: datetime,
    _now: bool = False,
    override_guard: bool = False,
    local_time: str | None = None,
) -> Campaign:
    """Send at `when` (an aware datetime in any zone; stored in UTC); the workspace's
    standing is checked as for `send_now`. With `local_time` ("09:00"), `when` is the start
    of the time-zone waves: each contact gets it at the first `local_time` in their zone
    from then on (core.campaigns.waves)."""
    actor.require("edit")
    campaign = get_campaign(session, actor, campaign_id)
    _require(Action.SEND, campaign)
    if when.tzinfo is None:
        raise ValidationFailed("A schedule needs a time zone.")
    if not _now and when <= clock.now():
        raise ValidationFailed("The scheduled time is in the past.")
    local = waves.parse_local_time(local_time) if local_time else None
    if local and len(campaign.variants) > 1:
        # The A/B decision compares the test's first hours, which waves would spread over a
        # day of zones; not supported rather than judged on the early zones only.
        raise ValidationFailed(
            "An A/B test cannot be sent in time-zone waves: send it at one time, or remove "
            "the other variants."
        )
    found = problems(session, actor, campaign)
    if found:
        raise CampaignNotSendable(found)
    standing.require_send_allowed(session, actor, campaign.id, override_guard)
    campaign.status = CampaignStatus.SCHEDULED
    campaign.scheduled_at = when.astimezone(clock.now().tzinfo)
    campaign.local_send_time = local
    campaign.waves_dispatched_at = None
    campaign.error = ""
    session.add(
        AuditLog(
            workspace_id=actor.workspace_id,
            user_id=actor.user_id,
            action="campaign_sent" if _now else "campaign_scheduled",
            target=str(campaign.id),
            detail={"local_time": local} if local else {},
        )
    )
    session.flush()
    # Where a mail's trail starts in the logs (core.infra.logs): who sent which campaign.
    log.info(
        "campaign %s %s by user %s for %s%s",
        campaign.id,
        "sent now" if _now else "scheduled",
        actor.user_id,
        campaign.scheduled_at.isoformat(),
        f", in waves at {local} in each contact's zone" if local else "",
        extra={"campaign_id": campaign.id},
    )
    if _now:
        jobs.enqueue(session, START_TASK, campaign.id)
    return campaign


def unschedule(session: Session, actor: Actor, campaign_id: int) -> Campaign:
    """Back to a draft (for editing)."""
    campaign = _editable(session, actor, campaign_id)
    campaign.status = CampaignStatus.DRAFT
    campaign.scheduled_at = None
    return campaign


def pause(session: Session, actor: Actor, campaign_id: int) -> Campaign:
    actor.require("edit")
    campaign = get_campaign(session, actor, campaign_id)
    _require(Action.PAUSE, campaign)
    session.execute(
        update(Campaign)
        .where(Campaign.id == campaign.id, Campaign.status == CampaignStatus.SENDING)
        .values(status=CampaignStatus.PAUSED)
    )
    session.refresh(campaign)
    return campaign


def resume(
    session: Session, actor: Actor, campaign_id: int, override_guard: bool = False
) -> Campaign:
    """Send the rest. A campaign the deliverability guard paused resumes only with
    `override_guard` (the person confirmed), which is recorded with who and when."""
    actor.require("edit")
    campaign = get_campaign(session, actor, campaign_id)
    _require(Action.RESUME, campaign)
    held = guard.pending_override(session, campaign)
    if held is not None and not override_guard:
        raise guard.GuardOverrideNeeded(guard.override_question(held))
    guard.override_pause(session, actor, campaign)
    campaign.status = CampaignStatus.SENDING
    campaign.error = ""
    session.flush()
    dispatch_batches(session, campaign.id)
    return campaign


def cancel(session: Session, actor: Actor, campaign_id: int) -> Campaign:
    """Stop for good: messages not yet sent are cancelled (those in flight still finish)."""
    actor.require("edit")
    campaign = get_campaign(session, actor, campaign_id)
    _require(Action.CANCEL, campaign)
    campaign.status = CampaignStatus.CANCELLED
    campaign.finished_at = clock.now()
    session.flush()
    session.execute(
        update(Message)
        .where(
            Message.campaign_id == campaign.id, Message.status.in_((*PENDING, MessageStatus.HELD))
        )
        .values(status=MessageStatus.CANCELLED, updated_at=clock.now())
    )
    return campaign


def retry_failed(session: Session, actor: Actor, campaign_id: int) -> int:
    """Send again the messages that failed (once the cause is fixed); returns how many."""
    actor.require("edit")
    campaign = get_campaign(session, actor, campaign_id)
    _require(Action.RETRY_FAILED, campaign)
    result = session.execute(
        update(Message)
        .where(Message.campaign_id == campaign.id, Message.status == MessageStatus.FAILED)
        .values(status=MessageStatus.QUEUED, attempts=0, error="", updated_at=clock.now())
    )
    pending = session.scalar(
        select(func.count()).where(Message.campaign_id == campaign.id, Message.status.in_(PENDING))
    )
    if not pending:
        raise ValidationFailed(allowed(Action.RETRY_FAILED, campaign.status, 0).reason)
    campaign.status = CampaignStatus.SENDING
    campaign.error = ""
    campaign.finished_at = None
    session.flush()
    dispatch_batches(session, campaign.id)
    return int(rowcount(result) or 0)


def delete_campaign(session: Session, actor: Actor, campaign_id: int) -> None:
    actor.require("edit")
    campaign = get_campaign(session, actor, campaign_id)
    _require(Action.DELETE, campaign)
    # Events and the ledger have no foreign keys (core.models): they go first, by hand.
    session.execute(
        delete(Event).where(
            Event.campaign_id == campaign.id, Event.workspace_id == actor.workspace_id
        ),
        execution_options={"synchronize_session": False},
    )
    session.execute(delete(Message).where(Message.campaign_id == campaign.id))
    # Its resends stay, unlinked (parent_campaign_id has no foreign key: core.models).
    session.execute(
        update(Campaign)
        .where(Campaign.parent_campaign_id == campaign.id)
        .values(parent_campaign_id=None)
    )
    session.delete(campaign)
    session.add(
        AuditLog(
            workspace_id=actor.workspace_id,
            user_id=actor.user_id,
            action="campaign_deleted",
            target=campaign.name,
        )
    )


def clone_campaign(session: Session, actor: Actor, campaign_id: int) -> Campaign:
    """A new draft with the same setup, audience and content."""
    source = get_campaign(session, actor, campaign_id)
    copy = create_campaign(session, actor, f"{source.name} (copy)")
    fields = (
        "from_name",
        "from_email",
        "reply_to",
        "track_opens",
        "track_clicks",
        "local_send_time",
    )
    for field in fields:
        setattr(copy, field, getattr(source, field))
    copy.audience = dict(source.audience)
    copy.variants.clear()
    for v in source.variants:
        copy.variants.append(
            Variant(
                label=v.label,
                subject=v.subject,
                from_name=v.from_name,
                template_id=v.template_id,
                html="" if v.template_id else v.html,
                text=None if v.template_id else v.text,
                share=v.share,
            )
        )
    session.flush()
    return copy


def failures(session: Session, actor: Actor, campaign_id: int, limit: int = 500) -> list[dict]:
    """Why messages failed: address and reason (what the owner needs to fix)."""
    campaign = get_campaign(session, actor, campaign_id)
    rows = session.execute(
        select(Message.email, Message.error, Message.attempts, Message.updated_at)
        .where(
            Message.campaign_id == campaign.id,
            or_(Message.status == MessageStatus.FAILED, Message.error != ""),
        )
        .order_by(Message.id)
        .limit(limit)
    )
    return [
        {"email": e, "reason": err, "attempts": a, "at": clock.as_utc(t)} for e, err, a, t in rows
    ]
