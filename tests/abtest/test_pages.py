"""The A/B report on the Reports page (app.py through AppTest), and the manual pick from it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from core import abtest
from core.infra import clock
from core.infra.db import session_scope
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


def test_wizard_template_step_turns_a_campaign_into_an_ab_test_and_back(live_db):
    from tests.pages.apptest import by_label, texts
    from tests.sending.builders import make_setup

    with session_scope() as s:
        setup = make_setup(s, contacts=4)
    at = sign_in(new_app(), setup.actor.email)
    at.switch_page("pages/campaigns.py").run()
    by_label(at.text_input, "New campaign name").input("Split me")
    by_label(at.button, "Create campaign").click()
    at.run()
    by_label(at.text_input, "Subject").input("Hello {{ first_name }}")
    by_label(at.button, "Save, next: recipients").click()
    at.run()
    with session_scope() as s:
        cid = s.scalar(select(Campaign.id).where(Campaign.name == "Split me"))
    at.session_state["cw_step"] = 2
    at.run()
    assert not at.exception, at.exception

    at.toggle(key=f"ab{cid}_on").set_value(True).run()
    assert at.text_input(key=f"ab{cid}_subject_0").value == "Hello {{ first_name }}"
    assert at.button(key=f"ab{cid}_suggest").disabled  # no OPENAI_API_KEY here
    at.text_input(key=f"ab{cid}_subject_1").input("Last chance, {{ first_name }}").run()
    by_label(at.button, "Save, next: review").click()
    at.run()
    assert not at.exception, at.exception
    assert "4. Review" in texts(at)
    with session_scope() as s:
        campaign = s.get(Campaign, cid)
        assert [(v.label, v.subject) for v in campaign.variants] == [
            ("A", "Hello {{ first_name }}"),
            ("B", "Last chance, {{ first_name }}"),
        ]
        assert (campaign.ab_test_share, campaign.ab_winner_metric) == (20, "click")

    at.session_state["cw_step"] = 2
    at.run()
    assert at.toggle(key=f"ab{cid}_on").value is True  # the stored test is shown
    at.toggle(key=f"ab{cid}_on").set_value(False).run()
    by_label(at.button, "Save, next: review").click()
    at.run()
    with session_scope() as s:
        assert [v.label for v in s.get(Campaign, cid).variants] == ["A"]
