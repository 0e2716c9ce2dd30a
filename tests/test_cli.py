"""`python -m core` from the shell: migrate, create-user, seed-demo."""

from __future__ import annotations

import json
import subprocess
import sys

from sqlalchemy import func, select

from core.infra.db import session_scope
from core.models import Campaign, Contact, Event, User
from tests.processes import ROOT, process_env


def run_cli(tmp_path, url: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "core", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=process_env(tmp_path, url, **env),
        timeout=120,
    )


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
    again = run_cli(tmp_path, live_db, "seed-demo", "--contacts", "60")
    assert again.returncode == 0 and "password" not in again.stdout
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 2
        assert session.scalar(select(func.count()).select_from(Contact)) == 60
        assert session.scalar(select(func.count()).select_from(Campaign)) == 1
        assert session.scalar(select(func.count()).select_from(Event)) > 60
