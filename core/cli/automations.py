"""create-automation, automation-status, pause-automation, resume-automation (issue 18)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sqlalchemy import select

from core.cli import fail_cleanly, out
from core.infra.db import session_scope
from core.infra.errors import NotFound, ValidationFailed

TRIGGERS = """triggers ("trigger" in DEF.json):
  {"type": "list_joined", "list": "NAME"}            contacts who join the list
  {"type": "segment_entered", "segment_id": ID}      contacts who newly match the segment
                                                     (not those in it when it starts)
  {"type": "date_field", "field": "custom_fields.KEY" | "created_at",
   "offset_days": N, "yearly": false}                date + N days is today in the
                                                     workspace's time zone (-7: a week
                                                     before); yearly: every anniversary
  {"type": "manual"}                                 enrolled by hand only
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "create-automation",
        help="validate, save and activate an automation; prints its id last",
        description="Validate, save and activate an automation; prints its id last (exit 2 "
        "and {error, path} on stderr for a bad definition).",
        epilog=TRIGGERS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--workspace", required=True, help="workspace slug")
    p.add_argument("--file", required=True, type=Path, help="the definition, a JSON file")
    p.add_argument("--paused", action="store_true", help="save it paused (activated, then held)")
    p.set_defaults(func=cmd_create_automation)

    p = subparsers.add_parser(
        "automation-status", help="one JSON line: enrollments by status and per-step figures"
    )
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_automation_status)

    for name, verb in (("pause-automation", "pause"), ("resume-automation", "resume")):
        p = subparsers.add_parser(name, help=f"{verb} an automation")
        p.add_argument("id", type=int)
        p.set_defaults(func=cmd_pause_or_resume, verb=verb)


def _system_actor_of_automation(session, automation_id: int):
    from core.infra.permissions import Actor
    from core.models import Automation

    workspace_id = session.scalar(
        select(Automation.workspace_id).where(Automation.id == automation_id)
    )
    if workspace_id is None:
        raise NotFound(f"No automation {automation_id}.")
    return Actor.system(workspace_id)


@fail_cleanly
def cmd_create_automation(args: argparse.Namespace) -> int:
    from core.automations import InvalidAutomation, create_automation, pause_automation
    from core.infra.permissions import Actor
    from core.models import Workspace

    try:
        data = json.loads(args.file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValidationFailed(f"Cannot read {args.file}: {exc.strerror}.") from None
    except json.JSONDecodeError as exc:
        raise ValidationFailed(f"{args.file} is not valid JSON: {exc.msg}.") from None
    try:
        with session_scope() as session:
            workspace_id = session.scalar(
                select(Workspace.id).where(Workspace.slug == args.workspace)
            )
            if workspace_id is None:
                raise NotFound(f"No workspace {args.workspace!r}.")
            actor = Actor.system(workspace_id)
            automation = create_automation(session, actor, data)
            if args.paused:
                pause_automation(session, actor, automation.id)
            status, automation_id = automation.status, automation.id
    except InvalidAutomation as exc:
        # The path names where in the file the problem is: steps[2].branch.if.opened
        sys.stderr.write(json.dumps({"error": exc.detail, "path": exc.path}) + "\n")
        return 2
    out(f"automation {automation_id}: {status}")
    out(str(automation_id))
    return 0


@fail_cleanly
def cmd_automation_status(args: argparse.Namespace) -> int:
    from core.automations import automation_status

    with session_scope() as session:
        actor = _system_actor_of_automation(session, args.id)
        out(json.dumps(automation_status(session, actor, args.id)))
    return 0


@fail_cleanly
def cmd_pause_or_resume(args: argparse.Namespace) -> int:
    from core.automations import pause_automation, resume_automation

    with session_scope() as session:
        actor = _system_actor_of_automation(session, args.id)
        act = pause_automation if args.verb == "pause" else resume_automation
        automation = act(session, actor, args.id)
        out(f"automation {automation.id}: {automation.status}")
    return 0
