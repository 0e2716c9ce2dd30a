"""segment-count: how many contacts a rule file or a saved segment matches."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sqlalchemy import select

from core.cli import fail_cleanly, out
from core.infra.db import session_scope
from core.infra.errors import NotFound, ValidationFailed


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "segment-count", help="count the contacts (any status) that rules or a segment match"
    )
    p.add_argument("--workspace", required=True, help="workspace slug")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--rules", type=Path, help="a JSON file holding a rule tree")
    source.add_argument("--segment", type=int, help="a saved segment's id")
    p.set_defaults(func=cmd_segment_count)


@fail_cleanly
def cmd_segment_count(args: argparse.Namespace) -> int:
    from core.infra.permissions import Actor
    from core.models import Workspace
    from core.segments import count_matching, get_segment

    if args.rules is not None:
        try:
            rules = json.loads(args.rules.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValidationFailed(f"Cannot read {args.rules}: {exc.strerror}.") from None
        except json.JSONDecodeError as exc:
            raise ValidationFailed(f"{args.rules} is not valid JSON: {exc.msg}.") from None
    with session_scope() as session:
        workspace_id = session.scalar(select(Workspace.id).where(Workspace.slug == args.workspace))
        if workspace_id is None:
            raise NotFound(f"No workspace {args.workspace!r}.")
        actor = Actor.system(workspace_id)
        if args.segment is not None:
            segment = get_segment(session, actor, args.segment)
            out(f"segment {segment.id}: {segment.name}")
            rules = segment.rules
        result = count_matching(session, actor, rules)
        out(f"counted in {result.seconds:.3f} s")
        out(str(result.count))
    return 0
