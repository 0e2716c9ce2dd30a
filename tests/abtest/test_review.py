"""The wizard's review of an A/B test before sending: rendered subjects, the split the send
will use, and the warning when no automatic winner is possible."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core import abtest
from core.abtest.statistics import MIN_SAMPLE
from core.campaigns import split
from core.models import Campaign, Message, Template
from tests.abtest.builders import make_ab_campaign, make_contacts, make_templates, settings_for
from tests.abtest.test_ui import _app
from tests.helpers import actor_of, make_contact, make_user, make_workspace
from ui.text import md

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


def test_the_warning_follows_the_split_sending_uses(backend):
    # 477 recipients, 20% share, 2 variants: 95 in the test, 48 and 47.
    assert split.split_sizes(477, 20, 2)[0] == [48, 47]
    assert abtest.sample_size_warning(477, 20, 2, "click") == (
        f"47 to 48 per variant: below {MIN_SAMPLE}, no automatic winner will be declared; "
        "raise the test share or choose manual."
    )
    assert abtest.sample_size_warning(480, 20, 2, "open").startswith("48 per variant: below")
    assert abtest.sample_size_warning(477, 20, 2, "manual") is None  # nobody waits for one
    assert abtest.sample_size_warning(1000, 20, 2, "click") is None  # 100 each: enough
    assert abtest.sample_size_warning(994, 20, 2, "click").startswith("99 to 100 per variant")
    assert "choose more recipients or choose manual" in abtest.sample_size_warning(
        150, 100, 2, "click"
    )
    assert "sending would fail" in abtest.sample_size_warning(10, 5, 2, "manual")


def _workspace_with_recipients(session, n: int):
    workspace = make_workspace(session)
    actor = actor_of(make_user(session, workspace, role="editor"))
    first = make_contact(session, workspace, email="ana@example.com", first_name="Ana")
    make_contacts(session, workspace, n - 1)
    make_contact(session, workspace, email="zed@example.com", status="unsubscribed")
    return workspace, actor, first


def test_review_renders_each_subject_for_the_first_recipient(session, backend):
    workspace, actor, first = _workspace_with_recipients(session, 477)
    templates = make_templates(session, workspace)
    settings = settings_for(templates, test_share=20)
    settings["variants"][0]["subject"] = "Spring for {{ first_name | default('you') }}"
    settings["variants"][1]["subject"] = "{{ first_name }}, {{ campaign_name }} is here"
    settings["variants"][1]["from_name"] = "Ana at Acme"
    campaign = make_ab_campaign(session, actor, workspace, settings, name="Spring")
    campaign.audience = {"all": True}
    session.flush()

    review = abtest.ab_review(session, actor, campaign.id)
    assert review is not None
    assert (review["test_share"], review["winner_rule"], review["wait_minutes"]) == (
        20,
        "click",
        240,
    )
    assert review["recipients"] == 477 and review["sample"] == "ana@example.com"
    assert [(v["label"], v["subject"]) for v in review["variants"]] == [
        ("A", "Spring for Ana"),
        ("B", "Ana, Spring is here"),
    ]
    assert [v["recipients"] for v in review["variants"]] == [48, 47]
    assert review["held"] == 477 - 95
    assert review["variants"][1]["from_name"] == "Ana at Acme"
    assert review["variants"][0]["template"] == session.get(Template, templates[0]).name
    assert review["warning"].startswith("47 to 48 per variant: below 100")

    # The sizes are the ones the snapshot's split then gives.
    from core.campaigns import audience

    campaign.status = "sending"
    session.flush()
    audience.snapshot(session, session.get(Campaign, campaign.id))
    rows = session.execute(
        select(Message.variant_id, Message.ab_rest).where(Message.campaign_id == campaign.id)
    ).all()
    per_variant = [sum(1 for v, _ in rows if v == variant.id) for variant in campaign.variants]
    assert sorted(per_variant, reverse=True) == [48, 47]
    assert sum(1 for _, rest in rows if rest) == review["held"]


def test_review_with_nobody_chosen_uses_the_placeholder_and_names_a_broken_subject(
    session, backend
):
    workspace, actor, _first = _workspace_with_recipients(session, 3)
    templates = make_templates(session, workspace)
    settings = settings_for(templates, test_share=100, winner_rule="manual")
    settings["variants"][1]["subject"] = "{{ first_name | default('friend') }}: {{ 1/0 }}"
    campaign = make_ab_campaign(session, actor, workspace, settings)
    review = abtest.ab_review(session, actor, campaign.id)
    assert review["recipients"] == 0 and review["sample"] == ""
    assert review["variants"][0]["subject"] == "Subject A"
    assert review["variants"][1]["subject"] == "" and review["variants"][1]["error"]
    assert review["warning"] is None  # nobody to split yet: "no recipients" says it
    assert "sending would fail" in abtest.sample_size_warning(1, 100, 2, "manual")

    abtest.remove_ab_test(session, actor, campaign.id)
    assert abtest.ab_review(session, actor, campaign.id) is None  # a plain campaign


def test_review_section_shows_settings_subjects_and_the_warning(session, backend):
    workspace, actor, _first = _workspace_with_recipients(session, 120)
    templates = make_templates(session, workspace)
    settings = settings_for(templates, test_share=10, wait_minutes=26 * 60)
    settings["variants"][0]["subject"] = "Hi {{ first_name }} [click](https://evil.example)"
    campaign = make_ab_campaign(session, actor, workspace, settings)
    campaign.audience = {"all": True}
    session.flush()

    at = _app(review=abtest.ab_review(session, actor, campaign.id))
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {
        "Test share": "10%",
        "Winner rule": "Click rate",
        "Waiting time": "1 day 2 hours",
        "Minimum probability to be best": "90%",
    }
    shown = "\n".join(m.value for m in at.markdown)
    assert f"**Variant A:** {md('Hi Ana [click](https://evil.example)')}" in shown  # escaped
    assert "](" not in shown
    assert "**Variant B:** Subject B" in shown and "{{" not in shown
    assert at.warning[0].value == md(
        "6 per variant: below 100, no automatic winner will be declared; raise the test share "
        "or choose manual."
    )


def test_settings_section_warns_while_the_share_is_chosen(backend):
    at = _app(templates={7: "Spring"}, default_template=7, recipients=480)
    at.toggle(key="ab_on").set_value(True).run()
    at.text_input(key="ab_subject_1").input("Other").run()
    assert "(48 per variant)" in at.caption[-1].value
    assert at.warning[0].value.startswith(md("48 per variant: below 100"))
    at.select_slider(key="ab_share").set_value(50).run()
    assert "(120 per variant)" in at.caption[-1].value and not at.warning
    at.select_slider(key="ab_share").set_value(20).run()
    at.radio(key="ab_rule").set_value("manual").run()
    assert not at.warning  # a manual pick needs no minimum
