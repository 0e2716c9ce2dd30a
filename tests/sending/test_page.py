"""The campaigns page through app.py: the four-step wizard, send now, the list's controls."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from core.infra.db import session_scope
from core.models import Campaign
from tests.pages.apptest import by_label, new_app, sign_in, texts
from tests.sending.builders import make_setup


def _campaign(name: str) -> Campaign:
    with session_scope() as s:
        c = s.scalars(select(Campaign).where(Campaign.name == name)).one()
        s.expunge(c)
        return c


def test_wizard_creates_and_sends_a_campaign(live_db, enqueued):
    with session_scope() as s:
        setup = make_setup(s, contacts=4)
    at = sign_in(new_app(), setup.actor.email)
    at.switch_page("pages/campaigns.py").run()
    assert not at.exception, at.exception
    by_label(at.text_input, "New campaign name").input("November news")
    by_label(at.button, "Create campaign").click()
    at.run()
    assert "1. Setup" in texts(at)

    # Step 1: setup (the sender comes from the workspace).
    assert by_label(at.text_input, "From address").value == "news@acme.io"
    by_label(at.text_input, "Subject").input("News for {{ first_name }}")
    by_label(at.button, "Save, next: recipients").click()
    at.run()
    assert "2. Recipients" in texts(at)

    # Step 2: one list; the count leaves out nobody here (all subscribed).
    by_label(at.radio, "Who receives it").set_value("Lists, a segment or specific contacts")
    at.run()
    by_label(at.multiselect, "Lists").set_value([setup.list_id])
    at.run()
    assert by_label(at.metric, "Will receive it").value == "4"
    by_label(at.button, "Save, next: template").click()
    at.run()

    # Step 3: the template.
    assert by_label(at.selectbox, "Template").value == setup.template_id
    by_label(at.button, "Save, next: review").click()
    at.run()
    assert "4. Review" in texts(at)
    assert "Cannot send" not in texts(at)
    assert "News for" in texts(at)

    by_label(at.button, "Send now").click()
    at.run()
    assert "Send “November news” to 4 recipients now?" in texts(at)
    assert enqueued == [] and _campaign("November news").status == "draft"  # asked first
    by_label(at.button, "Yes, send now").click()
    at.run()
    assert not at.exception, at.exception
    campaign = _campaign("November news")
    assert campaign.status == "scheduled" and campaign.audience["list_ids"] == [setup.list_id]
    assert ("worker.tasks_sending.start_campaign", (campaign.id,), {}) in enqueued
    assert "is on its way" in texts(at)
    assert by_label(at.selectbox, "Campaign").value == campaign.id


def test_review_says_why_a_campaign_cannot_be_sent(live_db):
    with session_scope() as s:
        setup = make_setup(s, contacts=1)
    at = sign_in(new_app(), setup.actor.email)
    at.switch_page("pages/campaigns.py").run()
    by_label(at.text_input, "New campaign name").input("Empty")
    by_label(at.button, "Create campaign").click()
    at.run()
    at.session_state["cw_step"] = 3
    at.run()
    shown = texts(at) + "\n".join(w.value for w in at.warning)
    assert "Cannot send: it has no subject" in shown
    assert "Cannot send: no recipients are chosen" in shown
    assert by_label(at.button, "Send now").disabled


def test_cancel_and_delete_ask_first_and_say_what_happened(live_db):
    from core.campaigns import service as campaigns
    from tests.sending.builders import make_campaign

    with session_scope() as s:
        setup = make_setup(s, contacts=2)
        cid = make_campaign(s, setup, name="Spring sale")
        campaigns.schedule(s, setup.actor, cid, campaigns.clock.now() + timedelta(days=1))
    at = sign_in(new_app(), setup.actor.email)
    at.switch_page("pages/campaigns.py").run()
    assert by_label(at.button, "Delete").disabled is False

    by_label(at.button, "Cancel").click()
    at.run()
    assert "Cancel “Spring sale”?" in texts(at)
    assert _campaign("Spring sale").status == "scheduled"  # nothing happened yet
    by_label(at.button, "Not now").click()
    at.run()
    assert "Cancel “Spring sale”?" not in texts(at)
    by_label(at.button, "Cancel").click()
    at.run()
    by_label(at.button, "Yes, cancel it").click()
    at.run()
    assert _campaign("Spring sale").status == "cancelled"
    assert "Cancelled “Spring sale”." in texts(at)

    by_label(at.button, "Delete").click()
    at.run()
    assert "This cannot be undone" in texts(at)
    by_label(at.button, "Yes, delete it").click()
    at.run()
    assert not at.exception, at.exception
    assert "Deleted “Spring sale”." in texts(at)
    with session_scope() as s:
        assert s.scalars(select(Campaign).where(Campaign.name == "Spring sale")).first() is None
