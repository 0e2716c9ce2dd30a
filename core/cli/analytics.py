"""rollup: rebuild the DuckDB rollups for the dashboard and the data team."""

from __future__ import annotations

import argparse
import json

from core.cli import fail_cleanly, out


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "rollup", help="bring the DuckDB rollups (ROLLUP_PATH) up to date and swap them in"
    )
    p.add_argument(
        "--full", action="store_true", help="forget the saved state and re-read every event"
    )
    p.add_argument("--path", default=None, help="rollup file (default: ROLLUP_PATH)")
    p.add_argument(
        "--wait", action="store_true", help="wait for a running rebuild instead of failing"
    )
    p.set_defaults(func=cmd_rollup)


@fail_cleanly
def cmd_rollup(args: argparse.Namespace) -> int:
    from pathlib import Path

    from core.analytics.rollups import build_rollups

    result = build_rollups(
        path=Path(args.path) if args.path else None, full=args.full, wait=args.wait
    )
    out(
        json.dumps(
            {
                "path": str(result.path),
                "built_at": result.built_at.isoformat(),
                "events_read": result.events_read,
                "events": result.events_total,
                "seconds": result.seconds,
                "tables": result.tables,
            }
        )
    )
    return 0
