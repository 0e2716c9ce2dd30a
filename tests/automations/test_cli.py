"""`python -m core create-automation | automation-status | pause-automation |
resume-automation` (issue 18), through the CLI's parser (tests/test_cli.run_cli)."""

from __future__ import annotations

import json

import pytest

from core.infra.db import session_scope
from core.models import ContactList, Template, Workspace
from tests.helpers import make_workspace
from tests.processes import PROCESS_BACKEND
from tests.test_cli import run_cli

pytestmark = pytest.mark.parametrize("backend", [PROCESS_BACKEND])  # the CLI: one backend


def test_create_status_pause_resume(live_db, tmp_path):
    with session_scope() as s:
        ws = make_workspace(s, from_email="hello@acme.io")
        template = Template(workspace_id=ws.id, name="Welcome", subject="Hi", html="<p>Hi</p>")
        s.add_all([template, ContactList(workspace_id=ws.id, name="Newsletter")])
        s.flush()
        slug, template_id = s.get(Workspace, ws.id).slug, template.id
    good = {
        "name": "Welcome",
        "trigger": {"type": "list_joined", "list": "Newsletter"},
        "steps": [{"send": {"template_id": template_id}}, {"wait": {"days": 2}}, {"exit": {}}],
    }
    bad = {**good, "steps": [{"send": {"template_id": template_id}}, {"wait": {"weeks": 1}}]}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    (tmp_path / "good.json").write_text(json.dumps(good))

    refused = run_cli(
        tmp_path,
        live_db,
        "create-automation",
        "--workspace",
        slug,
        "--file",
        str(tmp_path / "bad.json"),
    )
    assert refused.returncode == 2
    error = json.loads(refused.stderr.strip().splitlines()[-1])
    assert error["path"] == "steps[1].wait.weeks"

    made = run_cli(
        tmp_path,
        live_db,
        "create-automation",
        "--workspace",
        slug,
        "--file",
        str(tmp_path / "good.json"),
    )
    assert made.returncode == 0, made.stderr
    automation_id = made.stdout.strip().splitlines()[-1]
    status = run_cli(tmp_path, live_db, "automation-status", automation_id)
    assert json.loads(status.stdout) == {
        "status": "active",
        "enrolled": 0,
        "active": 0,
        "finished": 0,
        "exited": 0,
        "steps": [
            {"path": "0", "type": "send", "waiting": 0, "sent": 0, "opened": 0, "clicked": 0},
            {"path": "1", "type": "wait", "waiting": 0},
            {"path": "2", "type": "exit", "waiting": 0},
        ],
    }
    paused = run_cli(tmp_path, live_db, "pause-automation", automation_id)
    assert paused.returncode == 0 and paused.stdout.strip().endswith("paused")
    again = run_cli(tmp_path, live_db, "pause-automation", automation_id)
    assert again.returncode == 2 and "Only an active automation" in again.stderr
    resumed = run_cli(tmp_path, live_db, "resume-automation", automation_id)
    assert resumed.returncode == 0 and resumed.stdout.strip().endswith("active")
