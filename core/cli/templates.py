"""create-template."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.cli import fail_cleanly, out
from core.infra.db import session_scope
from core.infra.errors import NotFound, ValidationFailed


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "create-template", help="validate a template from files and save it; prints its id"
    )
    p.add_argument("--workspace", required=True, help="workspace slug")
    p.add_argument("--name", required=True)
    p.add_argument("--subject", required=True, help="default subject (may use variables)")
    p.add_argument("--html", required=True, type=Path, help="file with the HTML body")
    p.add_argument("--text", type=Path, help="file with the plain-text part (else generated)")
    p.set_defaults(func=cmd_create_template)


@fail_cleanly
def cmd_create_template(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from core.content.templates import TemplateDraft, create_template
    from core.infra.permissions import Actor
    from core.models import Workspace

    try:
        html = args.html.read_text(encoding="utf-8")
        text = args.text.read_text(encoding="utf-8") if args.text else None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationFailed(f"Cannot read the template file: {exc}") from exc
    with session_scope() as session:
        workspace_id = session.scalar(select(Workspace.id).where(Workspace.slug == args.workspace))
        if workspace_id is None:
            raise NotFound(f"No workspace with the slug {args.workspace!r}.")
        draft = TemplateDraft(name=args.name, subject=args.subject, html=html, text=text)
        template, warnings = create_template(session, Actor.system(workspace_id), draft)
        template_id, name = template.id, template.name
    for warning in warnings:
        out(f"warning: {warning}")
    out(json.dumps({"template_id": template_id, "name": name}))
    out(str(template_id))
    return 0
