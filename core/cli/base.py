"""migrate, create-user, seed-demo."""

from __future__ import annotations

import argparse
import json

from core.cli import fail_cleanly, out
from core.infra.db import session_scope


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("migrate", help="apply the database migrations")
    p.set_defaults(func=cmd_migrate)

    p = subparsers.add_parser("create-user", help="create a user (and its workspace)")
    p.add_argument("--workspace", required=True, help="workspace slug; created if missing")
    p.add_argument("--email", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--role", default="owner", choices=["owner", "admin", "editor", "viewer"])
    p.add_argument("--name", default="")
    p.set_defaults(func=cmd_create_user)

    p = subparsers.add_parser("seed-demo", help="create the demo workspace (idempotent)")
    p.add_argument("--contacts", type=int, default=500)
    p.add_argument("--if-empty", action="store_true", help="only when there are no users yet")
    p.set_defaults(func=cmd_seed_demo)


def cmd_migrate(_args: argparse.Namespace) -> int:
    from core.infra.migrate import migrate

    migrate()
    out("migrated")
    return 0


@fail_cleanly
def cmd_create_user(args: argparse.Namespace) -> int:
    from core.accounts.auth import create_user, ensure_workspace

    with session_scope() as session:
        workspace = ensure_workspace(session, args.workspace)
        user = create_user(session, workspace, args.email, args.password, args.role, args.name)
        out(json.dumps({"user_id": user.id, "workspace": workspace.slug, "role": user.role}))
    return 0


@fail_cleanly
def cmd_seed_demo(args: argparse.Namespace) -> int:
    from core.cli.demo import seed_demo

    result = seed_demo(contacts=args.contacts, if_empty=args.if_empty)
    if result.password:
        out(f"Demo login: {result.email}  password: {result.password}")
    out(json.dumps({"workspace": "demo", "created": result.created, "email": result.email}))
    return 0
