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


def test_recipients_combine_lists_a_segment_and_picked_contacts(live_db):
    from core.models import Contact, Workspace
    from core.segments import create_segment
    from tests.helpers import make_contact

    with session_scope() as s:
        setup = make_setup(s, contacts=4)  # r0..r3 in Customers; r0, r2 in Newsletter
        ws = s.get(Workspace, setup.workspace_id)
        for email, city in [("lyon1@example.com", "Lyon"), ("lyon2@example.com", "Lyon")]:
            make_contact(s, ws, email=email, city=city, first_name="Zoé")
        make_contact(s, ws, email="solo@example.com", first_name="Solène", last_name="Martin")
        make_contact(s, ws, email="sola@example.com", status="unsubscribed")
        s.scalars(select(Contact).where(Contact.email == "r0@example.com")).one().city = "Lyon"
        segment = create_segment(
            s, setup.actor, "Lyon", {"match": "all", "rules": [
                {"field": "city", "op": "eq", "value": "Lyon"}]}
        )  # fmt: skip
        segment_id = segment.id
        solo = s.scalar(select(Contact.id).where(Contact.email == "solo@example.com"))
        sola = s.scalar(select(Contact.id).where(Contact.email == "sola@example.com"))
    at = sign_in(new_app(), setup.actor.email)
    at.switch_page("pages/campaigns.py").run()
    by_label(at.text_input, "New campaign name").input("Together")
    by_label(at.button, "Create campaign").click()
    at.run()
    by_label(at.button, "Save, next: recipients").click()
    at.run()
    by_label(at.radio, "Who receives it").set_value("Lists, a segment or specific contacts")
    at.run()
    by_label(at.multiselect, "Lists").set_value([setup.other_list_id])  # r0, r2
    at.run()
    assert by_label(at.metric, "Will receive it").value == "2"
    by_label(at.selectbox, "Segment").set_value(segment_id)  # r0 (again), lyon1, lyon2
    at.run()
    assert by_label(at.metric, "Will receive it").value == "4"

    by_label(at.text_input, "Find contacts").input("sol")
    at.run()
    picker = by_label(at.multiselect, "Chosen contacts")
    assert sorted(picker.options) == sorted(
        ["Solène Martin <solo@example.com>", "sola@example.com (unsubscribed: will not receive it)"]
    )
    picker.set_value([solo, sola])
    at.run()
    assert by_label(at.metric, "Will receive it").value == "5"  # the unsubscribed one is not
    assert "6 chosen" in texts(at)
    # Another search keeps the picks; removing one is taking it out of the chips.
    by_label(at.text_input, "Find contacts").input("zoé")
    at.run()
    picker = by_label(at.multiselect, "Chosen contacts")
    assert sorted(picker.value) == sorted([solo, sola])
    assert "Zoé <lyon1@example.com>" in picker.options
    picker.set_value([solo])
    at.run()
    assert by_label(at.metric, "Will receive it").value == "5"
    by_label(at.button, "Save, next: template").click()
    at.run()
    assert not at.exception, at.exception
    assert "3. Template" in texts(at)
    audience = _campaign("Together").audience
    assert audience == {
        "all": False,
        "list_ids": [setup.other_list_id],
        "segment_id": segment_id,
        "contact_ids": [solo],
        "resend_of": None,
        "include_inactive": False,
    }

    # Back on the step, the saved choice is shown again.
    at.session_state["cw_step"] = 1
    at.run()
    assert by_label(at.multiselect, "Lists").value == [setup.other_list_id]
    assert by_label(at.selectbox, "Segment").value == segment_id
    assert by_label(at.multiselect, "Chosen contacts").value == [solo]
    assert by_label(at.metric, "Will receive it").value == "5"
