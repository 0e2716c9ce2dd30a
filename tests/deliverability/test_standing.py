"""The workspace's last 30 days against SES's review levels: close warns, over needs an
owner's override to send, enforced in core and recorded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from core import deliverability
from core.campaigns import service as campaigns
from core.deliverability import SendOverrideNeeded
from core.infra import clock
from core.infra.errors import PermissionDenied
from core.models import AuditLog, CampaignGuard, Event, Workspace
from tests.helpers import actor_of, make_user
from tests.sending.builders import make_campaign, make_setup


def add_events(session, workspace_id: int, kind: str, n: int, days_ago: float = 1) -> None:
    at = clock.now() - timedelta(days=days_ago)
    session.add_all(
        Event(
            workspace_id=workspace_id,
            type=kind,
            occurred_at=at,
            source="ses",
            bounce_type="hard" if kind == "bounce" else None,
            dedupe_key=f"{kind}-{workspace_id}-{days_ago}-{i}",
        )
        for i in range(n)
    )
    session.flush()


def test_a_few_sends_say_nothing_about_the_account(session):
    """2 bounces of 10 (a new workspace's first sends) need no override: below
    STANDING_MIN_SENT the rates are shown but never judged."""
    setup = make_setup(session, contacts=3)
    add_events(session, setup.workspace_id, "sent", 10)
    add_events(session, setup.workspace_id, "bounce", 2)
    standing = deliverability.workspace_standing(session, setup.actor)
    assert (standing.bounce_rate, standing.level) == (0.2, "ok")
    campaigns.send_now(session, setup.actor, make_campaign(session, setup, "First"))


def test_send_now_over_a_review_level_needs_an_owner_and_is_recorded(session):
    setup = make_setup(session, contacts=3)
    ws = session.get(Workspace, setup.workspace_id)
    admin = actor_of(make_user(session, ws, "admin"))
    add_events(session, ws.id, "sent", 1000)
    add_events(session, ws.id, "bounce", 45)
    add_events(session, ws.id, "bounce", 500, days_ago=40)  # outside the window
    standing = deliverability.workspace_standing(session, admin)
    assert (standing.sent, standing.bounces, standing.level) == (1000, 45, "close")
    first = make_campaign(session, setup, "Close")
    campaigns.send_now(session, admin, first)  # close: a warning in the wizard, no more

    add_events(session, ws.id, "complaint", 1)  # 0.1 % complaints: at the review level
    assert deliverability.workspace_standing(session, admin).level == "over"
    second = make_campaign(session, setup, "Over")
    with pytest.raises(SendOverrideNeeded, match="an owner must override"):
        campaigns.send_now(session, setup.actor, second)
    with pytest.raises(PermissionDenied):
        campaigns.send_now(session, admin, second, override_guard=True)
    assert campaigns.get_campaign(session, admin, second).status == "draft"
    campaigns.send_now(session, setup.actor, second, override_guard=True)  # the owner
    assert campaigns.get_campaign(session, admin, second).status == "scheduled"
    row = session.get(CampaignGuard, second)
    assert row.send_override_by_id == setup.actor.user_id
    assert row.send_override_at is not None
    assert row.send_override_detail["complaints"] == 1
    assert row.paused_at is None  # nothing for the banner: this was no pause
    assert deliverability.open_alerts(session, setup.actor) == []
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "guard_send_override")).one()
    assert (audit.user_id, audit.target) == (setup.actor.user_id, str(second))
    # Scheduling is held to the same rule.
    third = make_campaign(session, setup, "Later")
    with pytest.raises(SendOverrideNeeded):
        campaigns.schedule(session, setup.actor, third, clock.now() + timedelta(hours=1))


def test_the_dashboard_panel_turns_amber_at_80_percent_of_a_review_level():
    from core.analytics.reports.dashboard import deliverability as panel

    assert panel(1000, 39, 0).review_level == "ok"
    assert panel(1000, 41, 0).review_level == "close"  # 4.1 % bounces: above 80 % of 5 %
    assert panel(10000, 0, 9).review_level == "close"  # 0.09 % complaints
    assert panel(1000, 50, 0).review_level == "over"
    assert panel(1000, 0, 1).review_level == "over"
