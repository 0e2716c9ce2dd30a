"""resend-non-openers: a follow-up of a sent campaign to those who did not open it."""

from __future__ import annotations

import argparse
import json
from datetime import datetime

from core.campaigns import resend
from core.cli import fail_cleanly, out
from core.cli.campaigns import _actor_for_campaign
from core.infra import clock
from core.infra.db import session_scope
from core.infra.errors import ValidationFailed


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "resend-non-openers",
        help="schedule a resend of a sent campaign to its non-openers; prints its id last",
    )
    p.add_argument("id", type=int, help="the sent campaign")
    p.add_argument("--subject", default="", help="default: the campaign's subject")
    p.add_argument(
        "--at",
        default="",
        help="ISO-8601 time with offset; default 48 h after the first send (or in 5 minutes "
        "when that has passed)",
    )
    p.add_argument("--draft", action="store_true", help="leave it a draft, not scheduled")
    p.set_defaults(func=cmd_resend)


@fail_cleanly
def cmd_resend(args: argparse.Namespace) -> int:
    when = None
    if args.at:
        try:
            when = datetime.fromisoformat(args.at)
        except ValueError as exc:
            raise ValidationFailed(f"--at is not an ISO-8601 time: {args.at!r}.") from exc
        if when.tzinfo is None:
            raise ValidationFailed("--at needs a time zone offset (or Z).")
    with session_scope() as session:
        actor = _actor_for_campaign(session, args.id)
        plan = resend.plan_resend(session, actor, args.id)
        campaign = resend.create_resend(
            session, actor, args.id, args.subject, when, schedule=not args.draft
        )
        summary = {
            "parent": args.id,
            "status": campaign.status,
            "subject": campaign.variants[0].subject,
            "at": clock.as_utc(campaign.scheduled_at).isoformat()
            if campaign.scheduled_at
            else None,
            "non_openers_now": plan.non_openers,
        }
        campaign_id = campaign.id
    out(json.dumps(summary))
    out(str(campaign_id))
    return 0
