"""AppTest of the wizard's A/B section and the A/B report section."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import abtest
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

SCRIPT = str(Path(__file__).with_name("ui_script.py"))


def _app(**state) -> AppTest:
    at = AppTest.from_file(SCRIPT, default_timeout=30)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def test_settings_section_builds_valid_settings():
    at = _app(templates={7: "Spring", 8: "Spring (short)"}, default_template=7)
    assert at.session_state["result"] is None
    at.toggle(key="ab_on").set_value(True).run()
    result = at.session_state["result"]
    assert [v["subject"] for v in result["variants"]] == ["Spring is here", ""]
    assert [v["template_id"] for v in result["variants"]] == [7, 7]
    assert at.button(key="ab_suggest").disabled

    at.text_input(key="ab_subject_1").input("Last days of spring").run()
    at.selectbox(key="ab_template_1").select(8).run()
    at.select_slider(key="ab_share").set_value(30).run()
    at.radio(key="ab_rule").set_value("open").run()
    at.number_input(key="ab_wait").set_value(24).run()
    at.slider(key="ab_confidence").set_value(95).run()
    result = at.session_state["result"]
    assert result == {
        "variants": [
            {"subject": "Spring is here", "from_name": "", "template_id": 7},
            {"subject": "Last days of spring", "from_name": "", "template_id": 8},
        ],
        "test_share": 30,
        "winner_rule": "open",
        "wait_minutes": 1440,
        "min_confidence": 0.95,
    }
    assert abtest.validate_settings(result).test_share == 30
    assert "15.0% of the audience" in at.caption[-1].value


def test_settings_section_edits_stored_settings_and_fills_suggestions():
    current = {
        "variants": [
            {"subject": "One", "from_name": "Ana", "template_id": 7},
            {"subject": "Two", "from_name": "", "template_id": 7},
        ],
        "test_share": 100,
        "winner_rule": "manual",
        "wait_minutes": 120,
        "min_confidence": 0.8,
        "seed": 99,
    }
    at = _app(templates={7: "Spring"}, current=current, with_ai=True)
    assert at.session_state["result"] == current
    assert at.slider(key="ab_confidence").disabled  # manual mode needs no confidence
    at.number_input(key="ab_count").set_value(3).run()
    at.button(key="ab_suggest").click().run()
    subjects = [v["subject"] for v in at.session_state["result"]["variants"]]
    assert subjects == ["One", "One (take 1)", "One (take 2)"]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_report_section_shows_figures_and_returns_a_manual_pick(session):
    workspace = make_workspace(session)
    actor = actor_of(make_user(session, workspace, role="editor"))
    templates = make_templates(session, workspace)
    campaign = make_ab_campaign(session, actor, workspace, settings_for(templates))
    snapshot(session, campaign, make_contacts(session, workspace, 1000))
    start(session, campaign)
    send_test(session, campaign)
    add_events(session, campaign, messages_of(session, campaign, "A")[:11], "click")
    add_events(session, campaign, messages_of(session, campaign, "B")[:12], "click")
    add_events(session, campaign, messages_of(session, campaign, "B")[:30], "open")
    abtest.evaluate_ab_test(session, campaign.id, T0 + timedelta(hours=5))
    report = abtest.ab_report(session, actor, campaign.id, T0 + timedelta(hours=5))

    at = _app(report=report)
    assert at.session_state["chosen"] is None
    assert at.warning[0].value.startswith("Not significant")
    table = at.dataframe[0].value
    assert list(table["Variant"]) == ["A", "B"]
    assert list(table["Clicks"]) == [11, 12] and list(table["Opens (human)"]) == [11, 30]
    assert len(at.get("plotly_chart")) == 2
    assert at.selectbox(key="abr_choice").value == "B"  # the leader is proposed
    at.selectbox(key="abr_choice").select("A").run()
    at.button(key="abr_choose").click().run()
    picked = at.session_state["chosen"]
    assert picked == campaign.variants[0].id

    abtest.choose_winner_manually(session, actor, campaign.id, picked)
    at = _app(report=abtest.ab_report(session, actor, campaign.id))
    assert at.success[0].value.startswith("Winner: A (manual)")
    assert not at.button  # nothing left to choose
