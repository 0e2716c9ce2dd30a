"""Due tests, the automatic and manual winner, the report, and the rest released once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core import abtest
from core.infra.errors import PermissionDenied, ValidationFailed
from core.models import Campaign, Message
from tests.abtest.builders import (
    T0,
    add_events,
    make_ab_campaign,
    make_contacts,
    make_templates,
    messages_of,
    send_test,
    settings_for,
    snapshot,
    start,
)
from tests.helpers import actor_of, make_user, make_workspace

HOUR = timedelta(hours=1)


@pytest.fixture
def running(session):
    """A 2,000-recipient, two-variant test of 20% (200 + 200, 1,600 held), started at T0."""

    def build(**overrides):
        workspace = make_workspace(session)
        actor = actor_of(make_user(session, workspace, role="editor"))
        templates = make_templates(session, workspace)
        campaign = make_ab_campaign(session, actor, workspace, settings_for(templates, **overrides))
        snapshot(session, campaign, make_contacts(session, workspace, 2000))
        assert start(session, campaign)["held"] == 1600
        return workspace, actor, campaign

    return build


def _rest(session, campaign) -> list[tuple]:
    return session.execute(
        select(Message.status, Message.variant_id, func.count())
        .where(Message.campaign_id == campaign.id, Message.ab_rest.is_(True))
        .group_by(Message.status, Message.variant_id)
    ).all()


def test_automatic_winner_and_the_rest_released_exactly_once(session, running):
    _ws, actor, campaign = running()
    a, b = campaign.variants
    # Wait over, but the test is still being sent: not due.
    assert campaign.id not in abtest.due_ab_tests(session, T0 + 5 * HOUR)
    send_test(session, campaign)
    assert campaign.id not in abtest.due_ab_tests(session, T0 + 3 * HOUR)
    assert abtest.evaluate_ab_test(session, campaign.id, T0 + 3 * HOUR) is None

    add_events(session, campaign, messages_of(session, campaign, "A")[:15], "click")
    add_events(session, campaign, messages_of(session, campaign, "B")[:40], "click")
    # Machine clicks (link scanners) do not count.
    add_events(
        session, campaign, messages_of(session, campaign, "A")[100:190], "click", is_machine=True
    )
    add_events(session, campaign, messages_of(session, campaign, "A")[:5], "bounce")

    assert campaign.id in abtest.due_ab_tests(session, T0 + 4 * HOUR)
    decision = abtest.evaluate_ab_test(session, campaign.id, T0 + 4 * HOUR)
    assert decision["outcome"] == "winner" and decision["winner"] == "B"
    assert decision["how"] == "auto" and decision["bases"] == {"A": 195, "B": 200}
    assert campaign.ab_winner_variant_id == b.id
    assert campaign.id not in abtest.due_ab_tests(session, T0 + 5 * HOUR)
    assert abtest.evaluate_ab_test(session, campaign.id, T0 + 6 * HOUR) == decision

    assert abtest.pending_releases(session) == [campaign.id]
    assert abtest.release_rest(session, campaign.id) == 1600
    assert abtest.release_rest(session, campaign.id) == 0
    assert _rest(session, campaign) == [("queued", b.id, 1600)]
    assert abtest.pending_releases(session) == []

    report = abtest.ab_report(session, actor, campaign.id, T0 + 6 * HOUR)
    rows = {row["label"]: row for row in report["variants"]}
    assert (rows["A"]["clicks"], rows["A"]["base"], rows["A"]["bounced"]) == (15, 195, 5)
    assert rows["B"]["click_rate"] == pytest.approx(0.2)
    assert rows["B"]["click_ci"][0] < 0.2 < rows["B"]["click_ci"][1]
    assert rows["B"]["is_winner"] and rows["B"]["probability_best"] > 0.99
    assert report["winner"] == {"variant_id": b.id, "label": "B", "how": "auto"}
    assert "B wins" in report["summary"] and "1600" in report["summary"]
    assert report["rest"]["recipients"] == 1600 and report["totals"]["recipients"] == 2000
    assert report["totals"]["clicks"] == 55 and not report["can_choose_winner"]
    assert [p["clicks"] for p in report["trend"] if p["variant"] == "B"] == [0, 40]
    assert a.id != b.id
    with pytest.raises(ValidationFailed, match="B has already been chosen"):
        abtest.choose_winner_manually(session, actor, campaign.id, a.id)


def test_no_winner_when_not_significant_then_the_marketer_picks(session, running, enqueued):
    workspace, actor, campaign = running()
    a, b = campaign.variants
    send_test(session, campaign)
    add_events(session, campaign, messages_of(session, campaign, "A")[:20], "click")
    add_events(session, campaign, messages_of(session, campaign, "B")[:24], "click")
    decision = abtest.evaluate_ab_test(session, campaign.id, T0 + 5 * HOUR)
    assert decision["outcome"] == "not_significant" and decision["leader"] == "B"
    assert campaign.ab_winner_variant_id is None and campaign.ab_decided_at is not None
    assert campaign.id not in abtest.due_ab_tests(session, T0 + 6 * HOUR)
    assert abtest.pending_releases(session) == []
    with pytest.raises(ValidationFailed, match="No winner"):
        abtest.release_rest(session, campaign.id)

    report = abtest.ab_report(session, actor, campaign.id, T0 + 6 * HOUR)
    assert report["summary"].startswith("Not significant") and report["can_choose_winner"]
    viewer = actor_of(make_user(session, workspace, role="viewer"))
    assert not abtest.ab_report(session, viewer, campaign.id)["can_choose_winner"]
    with pytest.raises(PermissionDenied):
        abtest.choose_winner_manually(session, viewer, campaign.id, a.id)

    # The marketer may send the runner-up rather than the leader.
    abtest.choose_winner_manually(session, actor, campaign.id, a.id, T0 + 7 * HOUR)
    session.commit()
    assert enqueued == [(abtest.RELEASE_TASK, (campaign.id,), {})]
    with pytest.raises(ValidationFailed, match="A has already been chosen"):
        abtest.choose_winner_manually(session, actor, campaign.id, b.id)
    assert abtest.release_rest(session, campaign.id) == 1600
    assert _rest(session, campaign) == [("queued", a.id, 1600)]
    report = abtest.ab_report(session, actor, campaign.id)
    assert report["winner"]["how"] == "manual" and "chosen by" in report["summary"]


def test_manual_mode_and_a_pick_before_the_wait_ends(session, running):
    _ws, actor, campaign = running(winner_rule="manual")
    send_test(session, campaign)
    add_events(session, campaign, messages_of(session, campaign, "B")[:80], "click")
    decision = abtest.evaluate_ab_test(session, campaign.id, T0 + 4 * HOUR)
    assert decision["outcome"] == "manual" and decision["winner"] is None
    assert campaign.ab_winner_variant_id is None

    _ws, actor, early = running(winner_rule="manual")
    b = early.variants[1]
    before = abtest.ab_report(session, actor, early.id, T0 + HOUR)
    assert before["summary"].startswith("The test is running")
    abtest.choose_winner_manually(session, actor, early.id, b.id, T0 + HOUR)
    assert early.id not in abtest.due_ab_tests(session, T0 + 5 * HOUR)
    assert abtest.evaluate_ab_test(session, early.id, T0 + 5 * HOUR)["how"] == "manual"
    assert early.ab_winner_variant_id == b.id


def test_open_rule_counts_human_opens_and_clicks_as_opens(session, running):
    _ws, actor, campaign = running(winner_rule="open", min_confidence=0.95)
    send_test(session, campaign)
    a_msgs, b_msgs = messages_of(session, campaign, "A"), messages_of(session, campaign, "B")
    add_events(session, campaign, a_msgs[:150], "open", is_machine=True)  # Apple MPP
    add_events(session, campaign, a_msgs[:10], "open")
    add_events(session, campaign, b_msgs[:30], "open")
    add_events(session, campaign, b_msgs[25:35], "click")  # 5 clicks without a seen open
    add_events(session, campaign, b_msgs[:30], "open", at=T0 + 2 * HOUR)  # re-opens
    decision = abtest.evaluate_ab_test(session, campaign.id, T0 + 4 * HOUR)
    report = abtest.ab_report(session, actor, campaign.id)
    rows = {row["label"]: row for row in report["variants"]}
    assert (rows["A"]["opens"], rows["B"]["opens"], rows["B"]["clicks"]) == (10, 35, 10)
    assert decision["winner"] == "B" and decision["metric"] == "open"


def test_report_of_a_plain_campaign_and_other_workspaces(session, running):
    _ws, actor, campaign = running()
    outsider = actor_of(make_user(session, make_workspace(session)))
    with pytest.raises(Exception, match="does not exist"):
        abtest.ab_report(session, outsider, campaign.id)
    plain = Campaign(workspace_id=actor.workspace_id, name="Plain")
    session.add(plain)
    session.flush()
    assert abtest.ab_report(session, actor, plain.id)["is_ab"] is False
