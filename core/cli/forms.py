"""create-form: a signup form from the shell (issue 17); prints its id last."""

from __future__ import annotations

import argparse

from sqlalchemy import select

from core.cli import fail_cleanly, out
from core.infra.db import session_scope
from core.infra.errors import NotFound, ValidationFailed


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "create-form",
        help="create a signup form served at PUBLIC_BASE_URL/f/ID; prints the form id last",
    )
    p.add_argument("--workspace", required=True, help="workspace slug")
    p.add_argument("--name", required=True, help="the form's name (its page heading)")
    p.add_argument(
        "--list",
        dest="lists",
        action="append",
        required=True,
        metavar="LISTNAME",
        help="a public list the form subscribes to (created public if new; a private list "
        "is refused); repeat for several",
    )
    p.add_argument(
        "--double-opt-in",
        action="store_true",
        help="every signup confirms by the link mailed to it (lists set to double opt-in "
        "need it anyway)",
    )
    p.add_argument(
        "--field",
        dest="fields",
        action="append",
        default=[],
        metavar="KEY",
        help="a field to ask besides email (first_name, company, a custom field key...); "
        "KEY! makes it required; repeat for several",
    )
    p.add_argument("--consent-text", default="", help="the text shown next to the button")
    p.add_argument("--redirect-url", default="", help="where the browser goes after a post")
    p.set_defaults(func=cmd_create_form)


@fail_cleanly
def cmd_create_form(args: argparse.Namespace) -> int:
    from core.contacts.lists import create_list, find_list, set_list_options
    from core.forms.service import FieldSpec, FormInput, create_form
    from core.infra.config import settings
    from core.infra.permissions import Actor
    from core.models import Workspace

    with session_scope() as session:
        workspace_id = session.scalar(select(Workspace.id).where(Workspace.slug == args.workspace))
        if workspace_id is None:
            raise NotFound(f"No workspace {args.workspace!r}.")
        actor = Actor.system(workspace_id)
        list_ids = []
        for name in args.lists:
            found = find_list(session, actor, name)
            if found is None:
                found = create_list(session, actor, name)
                set_list_options(session, actor, found.id, visibility="public", opt_in=found.opt_in)
                out(f"created public list {found.name!r}")
            elif found.visibility != "public":
                raise ValidationFailed(
                    f"The list {found.name!r} is private: a form subscribes only to public "
                    "lists. Make it public on the Contacts page (Lists tab) first."
                )
            list_ids.append(found.id)
        fields = [FieldSpec(key.rstrip("!"), required=key.endswith("!")) for key in args.fields]
        form = create_form(
            session,
            actor,
            FormInput(
                name=args.name,
                list_ids=list_ids,
                fields=fields,
                double_opt_in=args.double_opt_in,
                consent_text=args.consent_text,
                redirect_url=args.redirect_url,
            ),
        )
        form_id = form.id
    out(f"hosted at {settings.public_base_url.rstrip('/')}/f/{form_id}")
    out(form_id)
    return 0
