"""`python -m core` from the shell: migrate, create-user, seed-demo."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from core.__main__ import build_parser
from core.infra.config import settings
from core.infra.db import dispose_all, session_scope
from core.models import Campaign, Contact, ContactList, Event, User
from tests.processes import PROCESS_BACKEND, ROOT, process_env

# The CLI is a process boundary: one backend (see PROCESS_BACKEND), here and in the other
# test_cli modules.
pytestmark = pytest.mark.parametrize("backend", [PROCESS_BACKEND])


def run_cli(
    tmp_path, url: str, *args: str, spawn: bool = False, **env: str
) -> subprocess.CompletedProcess:
    """`python -m core ARGS`, as (returncode, stdout, stderr).

    In this process by default: the command's parser and function on the test's database
    (`url` is the `live_db` that settings already point at), its output captured. A child
    process costs a second or two of imports each, and some forty commands ran. With `spawn`
    or environment variables, a real `python -m core` child: this module's own tests spawn,
    so the entry point itself stays covered."""
    if spawn or env:
        return subprocess.run(
            [sys.executable, "-m", "core", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=process_env(tmp_path, url, **env),
            timeout=120,
        )
    assert settings.database_url == url, "run_cli in-process runs on the live_db only"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            parsed = build_parser().parse_args(list(args))
            code = int(parsed.func(parsed) or 0)
        except SystemExit as exit_:  # argparse's usage errors, and commands that exit
            code = exit_.code if isinstance(exit_.code, int) else 1
        finally:
            dispose_all()  # the command's connections, as a child's exit would close them
    return subprocess.CompletedProcess(
        ["python", "-m", "core", *args], code, out.getvalue(), err.getvalue()
    )


# A real `python -m core` child: the entry point, its exit codes and its environment.
def test_create_user_and_seed_demo(live_db, tmp_path):
    done = run_cli(
        tmp_path,
        live_db,
        "create-user",
        "--workspace",
        "acme",
        "--email",
        "Boss@Example.com",
        "--password",
        "boss-password-1",
        "--role",
        "owner",
        spawn=True,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["workspace"] == "acme"

    bad = run_cli(
        tmp_path,
        live_db,
        "create-user",
        "--workspace",
        "acme",
        "--email",
        "x@example.com",
        "--password",
        "short",
        "--role",
        "owner",
    )
    assert bad.returncode == 2 and "password needs" in bad.stderr

    first = run_cli(
        tmp_path, live_db, "seed-demo", "--contacts", "60", DEMO_PASSWORD="demo-password-42"
    )
    assert first.returncode == 0, first.stderr
    assert "password: demo-password-42" in first.stdout
    again = run_cli(tmp_path, live_db, "seed-demo", "--contacts", "60", spawn=True)
    assert again.returncode == 0 and "password" not in again.stdout
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 2
        assert session.scalar(select(func.count()).select_from(Contact)) == 60
        assert session.scalar(select(func.count()).select_from(Campaign)) == 1
        assert session.scalar(select(func.count()).select_from(Event)) > 60


def test_create_form_prints_its_id_last_and_the_form_takes_posts(live_db, tmp_path):
    from core.forms import signup
    from core.models import Form

    run_cli(
        tmp_path,
        live_db,
        "create-user",
        "--workspace",
        "acme",
        "--email",
        "o@example.com",
        "--password",
        "boss-password-1",
        "--role",
        "owner",
    )
    done = run_cli(
        tmp_path,
        live_db,
        "create-form",
        "--workspace",
        "acme",
        "--name",
        "Footer",
        "--list",
        "News",
        "--list",
        "Offers",
        "--double-opt-in",
        "--field",
        "first_name!",
        "--field",
        "company",
        PUBLIC_BASE_URL="https://mail.acme.io",
    )
    assert done.returncode == 0, done.stderr
    form_id = done.stdout.splitlines()[-1]
    assert f"hosted at https://mail.acme.io/f/{form_id}" in done.stdout
    with session_scope() as session:
        form = session.get(Form, form_id)
        assert form.name == "Footer" and form.double_opt_in and len(form.list_ids) == 2
        assert form.fields == [
            {"key": "first_name", "required": True},
            {"key": "company", "required": False},
        ]
        assert signup.public_form(session, form_id).double_opt_in
    bad = run_cli(
        tmp_path,
        live_db,
        "create-form",
        "--workspace",
        "acme",
        "--name",
        "X",
        "--list",
        "News",
        "--field",
        "password",
    )
    assert bad.returncode == 2 and "no such field" in bad.stderr
    missing = run_cli(
        tmp_path, live_db, "create-form", "--workspace", "nope", "--name", "X", "--list", "News"
    )
    assert missing.returncode == 2 and "No workspace" in missing.stderr
    # The lists it created are public; an existing private list is refused, saying why.
    with session_scope() as session:
        lists = session.scalars(select(ContactList).order_by(ContactList.name))
        assert [(x.name, x.visibility) for x in lists] == [("News", "public"), ("Offers", "public")]
        workspace_id = session.scalar(select(ContactList.workspace_id))
        session.add(ContactList(workspace_id=workspace_id, name="Staff"))
    private = run_cli(
        tmp_path, live_db, "create-form", "--workspace", "acme", "--name", "Y", "--list", "Staff"
    )
    assert private.returncode == 2 and "'Staff' is private" in private.stderr
    assert "public" in private.stderr
