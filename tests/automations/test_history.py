"""Automation mail where people look for mail (issue 18): a contact's history labels it
with the automation and step, and the DuckDB rollups count it (tables `automations` and
`automation_daily`, and the workspace's daily totals) without touching campaign figures;
its messages are read again only above their mark."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from core.analytics import rollups
from core.analytics.reports.dashboard import dashboard
from core.automations import create_automation, enroll_contact, run_pass
from core.contacts.service import contact_activity
from core.infra import clock
from core.infra.db import get_sessionmaker, session_scope
from core.models import Campaign, Event, Message
from tests.automations.test_engine import T0, NoLimit, Recorder, make_setup
from tests.helpers import make_contact


@pytest.fixture
def rollup_file(tmp_path, monkeypatch):
    from core.infra.config import settings

    path = tmp_path / "rollups.duckdb"
    monkeypatch.setattr(settings, "rollup_path", path)
    return path


def _rows(path, sql, params=()):
    with rollups.open_rollups(path) as con:
        cur = con.execute(sql, list(params))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _run() -> None:
    run_pass(get_sessionmaker(), transport=Recorder(), rate_limiter=NoLimit())


def test_history_and_rollups_include_automation_mail(live_db, rollup_file):
    clock.freeze(T0)
    with session_scope() as session:
        s = make_setup(session)
        ws_id, actor = s.ws.id, s.actor
        ann, bob, cy = (
            make_contact(session, s.ws, email=f"{n}@example.com") for n in ("ann", "bob", "cy")
        )
        ann_id, cy_id = ann.id, cy.id
        spring = Campaign(workspace_id=ws_id, name="Spring", status="sent")
        session.add(spring)
        session.flush()
        session.add(
            Message(
                workspace_id=ws_id,
                campaign_id=spring.id,
                contact_id=ann.id,
                email=ann.email,
                status="sent",
                queued_at=T0 - timedelta(days=1),
                sent_at=T0 - timedelta(days=1),
            )
        )
        data = {
            "name": "Onboarding",
            "trigger": {"type": "manual"},
            "steps": [{"send": {"template_id": s.welcome}}, {"send": {"template_id": s.tips}}],
        }
        automation = create_automation(session, actor, data)
        automation_id, spring_id = automation.id, spring.id
        for contact in (ann, bob):
            enroll_contact(session, actor, automation_id, contact.id)
    _run()
    with session_scope() as session:
        first = session.scalars(
            select(Message).where(Message.contact_id == ann_id, Message.step_path == "0")
        ).one()
        session.add(
            Event(
                workspace_id=ws_id,
                campaign_id=None,
                message_id=first.id,
                contact_id=ann_id,
                type="open",
                occurred_at=T0 + timedelta(hours=1),
                source="own",
                dedupe_key=f"open:{first.id}",
                is_machine=False,
            )
        )
    clock.reset()

    # The contact's history: the campaign's message and the automation's two, labelled.
    with session_scope() as session:
        activity = contact_activity(session, actor, ann_id)
    labels = sorted((m["campaign"], m["automation"], m["step"]) for m in activity.messages)
    assert labels == [("", "Onboarding", "0"), ("", "Onboarding", "1"), ("Spring", "", "")]
    assert [(e["type"], e["automation"]) for e in activity.events if e["type"] == "open"] == [
        ("open", "Onboarding")
    ]

    built = rollups.build_rollups(lag_seconds=0)
    assert {"automations", "automation_daily"} <= set(built.tables)
    [row] = _rows(rollup_file, "SELECT * FROM r.automations WHERE workspace_id = ?", [ws_id])
    assert (row["automation_id"], row["name"], row["sent"], row["unique_opens"]) == (
        automation_id,
        "Onboarding",
        4,
        1,
    )
    assert row["open_rate"] == pytest.approx(1 / 4)  # no delivery events: sent less bounces
    steps = _rows(
        rollup_file,
        "SELECT automation, step, sum(sent) AS sent, sum(unique_opens) AS opens "
        "FROM r.automation_daily WHERE automation_id = ? GROUP BY ALL ORDER BY step",
        [automation_id],
    )
    assert steps == [
        {"automation": "Onboarding", "step": "0", "sent": 2, "opens": 1},
        {"automation": "Onboarding", "step": "1", "sent": 2, "opens": 0},
    ]
    # Campaign figures are the campaign's alone; the workspace's day counts all five mails.
    campaigns = _rows(
        rollup_file, "SELECT campaign_id, sent FROM r.campaigns WHERE workspace_id = ?", [ws_id]
    )
    assert campaigns == [{"campaign_id": spring_id, "sent": 1}]
    [total] = _rows(
        rollup_file,
        "SELECT sum(sent) AS sent FROM r.workspace_daily WHERE workspace_id = ?",
        [ws_id],
    )
    assert total["sent"] == 5
    # The dashboard's "emails sent" counts them too, with or without the rollups.
    with session_scope() as session:
        for use in (True, False):
            board = dashboard(session, actor, use_rollups=use)
            assert (board.sent_all_time, board.has_rollups) == (5, use)

    # One more enrollment: the next build reads only the new messages (the finished
    # campaign's and the old automation mail are kept from the state).
    clock.freeze(T0 + timedelta(days=1))
    with session_scope() as session:
        enroll_contact(session, actor, automation_id, cy_id)
    _run()
    clock.reset()
    again = rollups.build_rollups(lag_seconds=0)
    assert again.messages_read == 2
    [row] = _rows(
        rollup_file, "SELECT sent FROM r.automations WHERE automation_id = ?", [automation_id]
    )
    assert row["sent"] == 6
    assert rollups.build_rollups(lag_seconds=0).messages_read == 0
