"""sunset-recompute: mark inactive contacts by the sunset policy now (beat does it daily)."""

from __future__ import annotations

import argparse
import json

from sqlalchemy import select

from core.cli import fail_cleanly, out
from core.contacts import sunset
from core.infra.db import get_sessionmaker, session_scope
from core.infra.errors import NotFound
from core.models import Workspace


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sunset-recompute", help="recompute inactive contacts (one workspace, or all)"
    )
    p.add_argument("--workspace", default="", help="workspace slug (default: every workspace)")
    p.set_defaults(func=cmd_recompute)


@fail_cleanly
def cmd_recompute(args: argparse.Namespace) -> int:
    if not args.workspace:
        done = sunset.recompute_all(get_sessionmaker())
        out(json.dumps({"inactive": {str(k): v for k, v in done.items()}}))
        return 0
    with session_scope() as session:
        ws = session.scalar(select(Workspace.id).where(Workspace.slug == args.workspace))
        if ws is None:
            raise NotFound(f"No workspace {args.workspace!r}.")
        result = sunset.recompute(session, ws)
    out(json.dumps({"workspace": args.workspace, **result}))
    return 0
