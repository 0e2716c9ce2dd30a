"""import-contacts: a CSV or .xlsx file into a workspace, from the shell."""

from __future__ import annotations

import argparse
import json
import sys

from sqlalchemy import select

from core.cli import fail_cleanly, out
from core.infra.db import get_sessionmaker
from core.infra.errors import NotFound


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import-contacts",
        help="import contacts from a CSV or .xlsx file; prints a JSON summary last",
    )
    p.add_argument("file", help="CSV (comma, semicolon or tab) or .xlsx")
    p.add_argument("--workspace", required=True, help="workspace slug")
    p.add_argument("--list", dest="list_name", help="add everyone to this list (created if new)")
    p.add_argument("--update-existing", action="store_true", help="update contacts that exist")
    p.add_argument("--sheet", help="the .xlsx sheet to read (default: the first)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_import_contacts)


@fail_cleanly
def cmd_import_contacts(args: argparse.Namespace) -> int:
    from core.contacts.importing import ImportOptions, import_contacts
    from core.infra.permissions import Actor
    from core.models import Workspace

    def progress(done: int, total: int) -> None:
        if not args.quiet:
            sys.stderr.write(f"{done:,} / ~{total:,} rows\n")

    sessions = get_sessionmaker()
    with sessions() as session:
        workspace_id = session.scalar(select(Workspace.id).where(Workspace.slug == args.workspace))
    if workspace_id is None:
        raise NotFound(f"There is no workspace {args.workspace!r}.")
    options = ImportOptions(
        list_name=args.list_name, update_existing=args.update_existing, sheet=args.sheet
    )
    # The import commits once per chunk itself: it takes the session factory.
    result = import_contacts(
        sessions, Actor.system(workspace_id), args.file, options, progress=progress
    )
    out(json.dumps(result.summary()))
    return 0
