"""The A/B report on the Reports page (app.py through AppTest), and the manual pick from it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from core import abtest, clock
from core.db import session_scope
from core.models import Campaign, User, Workspace
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
from tests.apptest_db import seed_user
from tests.helpers import actor_of
from tests.pages.apptest import new_app, sign_in


def test_reports_page_shows_the_test_and_takes_a_manual_pick(live_db, enqueued):
    email = seed_user(role="editor")
    with session_scope() as session:
        workspace = session.scalar(select(Workspace).where(Workspace.slug == "acme"))
        actor = actor_of(session.scalar(select(User).where(User.email == email)))
        templates = make_templates(session, workspace)
        campaign = make_ab_campaign(session, actor, workspace, settings_for(templates))
        snapshot(session, campaign, make_contacts(session, workspace, 1000))
        start(session, campaign)
        send_test(session, campaign)
        add_events(session, campaign, messages_of(session, campaign, "A")[:11], "click")
        add_events(session, campaign, messages_of(session, campaign, "B")[:12], "click")
        abtest.evaluate_ab_test(session, campaign.id, T0 + timedelta(hours=5))
        campaign_id, variant_a = campaign.id, campaign.variants[0].id
    clock.freeze(T0 + timedelta(hours=6))

    at = sign_in(new_app(), email)
    at.query_params["campaign"] = str(campaign_id)
    at.switch_page("pages/reports.py").run()
    assert not at.exception, at.exception
    assert "A/B test" in [h.value for h in at.subheader]
    assert any(w.value.startswith("Not significant") for w in at.warning)
    at.selectbox(key=f"abr{campaign_id}_choice").select("A").run()
    at.button(key=f"abr{campaign_id}_choose").click().run()
    assert not at.exception, at.exception
    assert any("Winner chosen" in s.value for s in at.success)
    with session_scope() as session:
        assert session.get(Campaign, campaign_id).ab_winner_variant_id == variant_a
    assert (abtest.RELEASE_TASK, (campaign_id,), {}) in enqueued
