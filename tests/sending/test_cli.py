"""`python -m core send | campaign-status | pause | resume | cancel` through the CLI's parser (tests/test_cli.run_cli)."""

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


def test_send_at_a_local_time_prints_the_waves_then_the_id(live_db, tmp_path):
    with session_scope() as s:
        setup = make_setup(s, contacts=3)
        ws = s.get(Workspace, setup.workspace_id)
        ws.timezone = "Europe/Berlin"
        for contact, zone in zip(
            ws_contacts(s, ws.id)[:2], ("Asia/Kolkata", "America/New_York"), strict=True
        ):
            contact.timezone = zone
        slug = ws.slug
    at = (clock.now() + timedelta(hours=2)).replace(microsecond=0)
    done = run_cli(
        tmp_path, live_db, "send", "--workspace", slug, "--name", "Mornings", "--template",
        str(setup.template_id), "--list", "Customers", "--at", at.isoformat(),
        "--local-time", "9:00",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    *_, plan_line, id_line = done.stdout.strip().splitlines()
    plan = json.loads(plan_line)
    assert {k: plan[k] for k in ("local_time", "recipients", "zones", "waves")} == {
        "local_time": "09:00",
        "recipients": 3,
        "zones": 3,
        "waves": 3,
    }
    first, last = (datetime.fromisoformat(plan[k]) for k in ("first_wave", "last_wave"))
    assert at <= first < last < at + timedelta(hours=24)
    with session_scope() as s:
        campaign = s.get(Campaign, int(id_line))
        assert (campaign.status, campaign.local_send_time) == ("scheduled", "09:00")

    bad = run_cli(
        tmp_path, live_db, "send", "--workspace", slug, "--name", "X", "--template",
        str(setup.template_id), "--all", "--local-time", "nine",
    )  # fmt: skip
    assert bad.returncode == 2 and "not a time of day" in bad.stderr


def ws_contacts(session, workspace_id: int) -> list:
    from sqlalchemy import select

    from core.models import Contact

    return list(
        session.scalars(
            select(Contact).where(Contact.workspace_id == workspace_id).order_by(Contact.id)
        )
    )
