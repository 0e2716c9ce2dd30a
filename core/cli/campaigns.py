"""send, campaign-status, pause, resume, cancel: campaigns from operations scripts."""

from __future__ import annotations

import argparse
import json
from datetime import datetime

from sqlalchemy import select

from core.campaigns import service as campaigns
from core.campaigns import waves
from core.cli import fail_cleanly, out
from core.infra.db import session_scope
from core.infra.errors import NotFound, ValidationFailed
from core.infra.permissions import Actor
from core.models import Campaign, ContactList, Workspace


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("send", help="create a campaign and send it now or at --at")
    p.add_argument("--workspace", required=True, help="workspace slug")
    p.add_argument("--name", required=True)
    p.add_argument("--template", required=True, type=int, help="template id")
    p.add_argument("--subject", default="", help="default: the template's subject")
    p.add_argument("--list", action="append", default=[], dest="lists", help="list name")
    p.add_argument("--all", action="store_true", help="all subscribed contacts")
    p.add_argument(
        "--at", default="", help="ISO-8601 time with offset, e.g. 2026-12-01T09:00+01:00"
    )
    p.add_argument(
        "--local-time",
        default="",
        metavar="HH:MM",
        help="send at this time in each contact's time zone (the workspace's for contacts "
        "without one), in waves from now or from --at",
    )
    p.add_argument(
        "--override-guard",
        action="store_true",
        help="send even though the workspace's last 30 days are at an SES review level "
        "(recorded, as the system)",
    )
    p.set_defaults(func=cmd_send)

    p = subparsers.add_parser("campaign-status", help="one JSON line of status and counts")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_status)

    for name, helptext in (
        ("pause", "pause a sending campaign"),
        ("resume", "resume a paused campaign"),
        ("cancel", "cancel a campaign"),
    ):
        p = subparsers.add_parser(name, help=helptext)
        p.add_argument("id", type=int)
        if name == "resume":
            p.add_argument(
                "--override-guard",
                action="store_true",
                help="resume a campaign the deliverability guard paused (recorded)",
            )
        p.set_defaults(func=cmd_control, action=name)


def _actor_for_slug(session, slug: str) -> Actor:
    workspace = session.scalars(select(Workspace).where(Workspace.slug == slug)).first()
    if workspace is None:
        raise NotFound(f"No workspace {slug!r}.")
    return Actor.system(workspace.id)


def _actor_for_campaign(session, campaign_id: int) -> Actor:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound(f"No campaign {campaign_id}.")
    return Actor.system(campaign.workspace_id)


@fail_cleanly
def cmd_send(args: argparse.Namespace) -> int:
    if not args.lists and not args.all:
        raise ValidationFailed("Choose recipients with --list NAME (repeatable) or --all.")
    when = None
    if args.at:
        when = datetime.fromisoformat(args.at)
        if when.tzinfo is None:
            raise ValidationFailed("--at needs a time zone offset (or Z).")
    with session_scope() as session:
        actor = _actor_for_slug(session, args.workspace)
        list_ids = []
        for name in args.lists:
            found = session.scalars(
                select(ContactList.id).where(
                    ContactList.workspace_id == actor.workspace_id, ContactList.name == name
                )
            ).first()
            if found is None:
                raise NotFound(f"No list {name!r} in {args.workspace}.")
            list_ids.append(found)
        campaign = campaigns.create_campaign(session, actor, args.name)
        campaigns.update_template(session, actor, campaign.id, args.template)
        campaigns.update_setup(
            session,
            actor,
            campaign.id,
            name=args.name,
            subject=args.subject or campaign.variants[0].subject,
            from_name=campaign.from_name,
            from_email=campaign.from_email,
            reply_to=campaign.reply_to,
        )
        campaigns.update_audience(
            session, actor, campaign.id, {"all": args.all, "list_ids": list_ids}
        )
        local_time = args.local_time or None
        if when is None:
            campaigns.send_now(session, actor, campaign.id, args.override_guard, local_time)
        else:
            campaigns.schedule(
                session,
                actor,
                campaign.id,
                when,
                override_guard=args.override_guard,
                local_time=local_time,
            )
        campaign_id = campaign.id
        plan = None
        if local_time:
            plan = waves.plan_waves(
                session, actor, campaign.audience, local_time, campaign.scheduled_at
            )
    if plan is not None:
        out(json.dumps(_plan_summary(plan)))
    out(str(campaign_id))
    return 0


def _plan_summary(plan: waves.WavePlan) -> dict:
    """The waves a time-zone send will go in: one JSON line before the campaign's id."""

    def moment(wave: waves.Wave | None) -> str | None:
        return wave.due_at.isoformat() if wave else None

    return {
        "local_time": plan.local_time,
        "recipients": plan.recipients,
        "zones": plan.zones,
        "waves": len(plan.waves),
        "first_wave": moment(plan.first),
        "last_wave": moment(plan.last),
    }


@fail_cleanly
def cmd_status(args: argparse.Namespace) -> int:
    with session_scope() as session:
        actor = _actor_for_campaign(session, args.id)
        status = campaigns.campaign_status(session, actor, args.id)
        summary = waves.waves_summary(waves.campaign_waves(session, actor, args.id))
    keys = ("status", "recipients", "queued", "sent", "failed", "uncertain", "error")
    shown = {k: status[k] for k in keys}
    if summary:  # a time-zone campaign: "sending in waves: 1 of 4 sent, next 09:00 CET ..."
        shown["waves"] = summary
    out(json.dumps(shown))
    return 0


@fail_cleanly
def cmd_control(args: argparse.Namespace) -> int:
    with session_scope() as session:
        actor = _actor_for_campaign(session, args.id)
        extra = {"override_guard": True} if getattr(args, "override_guard", False) else {}
        campaign = getattr(campaigns, args.action)(session, actor, args.id, **extra)
        status = campaign.status
    out(json.dumps({"id": args.id, "status": status}))
    return 0
