"""`python -m core send | campaign-status | pause | resume | cancel` as a separate process."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from core.infra import clock
from core.infra.db import session_scope
from core.models import Campaign, Workspace
from tests.processes import PROCESS_BACKEND
from tests.sending.builders import make_setup
from tests.test_cli import run_cli

pytestmark = pytest.mark.parametrize("backend", [PROCESS_BACKEND])  # the CLI: one backend


def test_send_schedule_status_and_cancel(live_db, tmp_path):
    with session_scope() as s:
        setup = make_setup(s, contacts=3)
        slug = s.get(Workspace, setup.workspace_id).slug
    at = (clock.now() + timedelta(hours=2)).astimezone().isoformat()
    done = run_cli(
        tmp_path, live_db, "send", "--workspace", slug, "--name", "Ops", "--template",
        str(setup.template_id), "--list", "Customers", "--at", at,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    cid = int(done.stdout.strip().splitlines()[-1])
    with session_scope() as s:
        campaign = s.get(Campaign, cid)
        assert campaign.status == "scheduled"
        assert campaign.variants[0].subject == "Hi {{ first_name }}"
        assert clock.as_utc(campaign.scheduled_at) == datetime.fromisoformat(at)

    status = run_cli(tmp_path, live_db, "campaign-status", str(cid))
    assert json.loads(status.stdout) == {
        "status": "scheduled",
        "recipients": 0,
        "queued": 0,
        "sent": 0,
        "failed": 0,
        "uncertain": 0,
        "error": "",
    }
    paused = run_cli(tmp_path, live_db, "pause", str(cid))
    assert paused.returncode == 2 and "Only a sending campaign" in paused.stderr
    cancelled = run_cli(tmp_path, live_db, "cancel", str(cid))
    assert json.loads(cancelled.stdout) == {"id": cid, "status": "cancelled"}

    missing = run_cli(
        tmp_path, live_db, "send", "--workspace", slug, "--name", "X", "--template",
        str(setup.template_id), "--list", "Nope",
    )  # fmt: skip
    assert missing.returncode == 2 and "No list 'Nope'" in missing.stderr
