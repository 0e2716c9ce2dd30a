"""The A/B parts of the real pages (through app.py): set up a test in the campaign wizard,
and read it, then pick a winner, on the Reports page."""

from __future__ import annotations

from sqlalchemy import select

from core import abtest
from core.db import session_scope
from core.models import Campaign, Template
from tests.pages.apptest import by_label, new_app, sign_in, texts
from tests.sending.builders import HTML, make_setup


def test_wizard_turns_a_campaign_into_an_ab_test_and_back(live_db, enqueued):
    with session_scope() as s:
        setup = make_setup(s, contacts=6)
        other = Template(workspace_id=setup.workspace_id, name="Short", subject="S", html=HTML)
        s.add(other)
        s.flush()
        other_id = other.id
    at = sign_in(new_app(), setup.actor.email)
    at.switch_page("pages/campaigns.py").run()
    by_label(at.text_input, "New campaign name").input("Spring")
    by_label(at.button, "Create campaign").click()
    at.run()
    by_label(at.text_input, "Subject").input("Spring is here")
    by_label(at.button, "Save, next: recipients").click()
    at.run()
    by_label(at.radio, "Who receives it").set_value("Lists")
    at.run()
    by_label(at.multiselect, "Lists").set_value([setup.list_id])
    at.run()
    by_label(at.button, "Save, next: template").click()
    at.run()
    assert not at.exception, at.exception

    # Step 3: the A/B section; the assistant is not configured, so no suggestions.
    toggle = by_label(at.toggle, "A/B test this campaign")
    toggle.set_value(True).run()
    assert by_label(at.button, "Suggest subject variants").disabled
    by_label(at.text_input, "Subject B").input("Last days of spring")
    by_label(at.selectbox, "Template B").select(other_id)
    by_label(at.select_slider, "Test share (% of the audience)").set_value(30)
    by_label(at.radio, "Winner rule").set_value("manual")
    at.run()
    by_label(at.button, "Save, next: review").click()
    at.run()
    assert not at.exception, at.exception
    assert "4. Review" in texts(at)
    assert "A/B test:" in texts(at) and "Last days of spring" in texts(at)

    with session_scope() as s:
        campaign = s.scalars(select(Campaign).where(Campaign.name == "Spring")).one()
        settings = abtest.ab_settings(s, setup.actor, campaign.id)
    assert settings["variants"] == [
        {"subject": "Spring is here", "from_name": "Acme News", "template_id": setup.template_id},
        {"subject": "Last days of spring", "from_name": "Acme News", "template_id": other_id},
    ]
    assert (settings["test_share"], settings["winner_rule"]) == (30, "manual")

    # Back to step 3, A/B off: a plain campaign again, variant A kept.
    at.session_state["cw_step"] = 2
    at.run()
    by_label(at.toggle, "A/B test this campaign").set_value(False).run()
    by_label(at.button, "Save, next: review").click()
    at.run()
    assert not at.exception, at.exception
    with session_scope() as s:
        campaign = s.get(Campaign, campaign.id)
        assert [(v.label, v.subject) for v in campaign.variants] == [("A", "Spring is here")]
