"""The pages of issue 19 through app.py (AppTest): the wizard's count of inactive contacts
left out, the resend form on the campaign list, the report's combined reach, Settings."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from core.campaigns import resend as resends
from core.campaigns import service as campaigns
from core.contacts import sunset
from core.infra import clock
from core.infra.db import session_scope
from core.models import Campaign, Contact, Message
from tests.pages.apptest import by_label, new_app, sign_in, texts
from tests.sending.builders import make_campaign, make_setup


def _mark_inactive(s, emails: list[str]) -> None:
    for contact in s.scalars(select(Contact).where(Contact.email.in_(emails))):
        contact.inactive_since = clock.now()


def test_the_wizard_says_how_many_inactive_contacts_are_left_out(live_db):
    with session_scope() as s:
        setup = make_setup(s, contacts=5)
        _mark_inactive(s, ["r1@example.com", "r3@example.com"])
        cid = make_campaign(s, setup, name="Winter")
    at = sign_in(new_app(), setup.actor.email)
    at.switch_page("pages/campaigns.py").run()
    at.session_state["cw_campaign"] = cid
    at.session_state["cw_step"] = 1
    at.run()
    assert not at.exception, at.exception
    assert by_label(at.metric, "Will receive it").value == "3"
    assert "2 inactive contacts left out (sunset policy" in texts(at)
    box = by_label(at.checkbox, "Include inactive contacts")
    assert box.value is False
    box.check()
    at.run()
    assert by_label(at.metric, "Will receive it").value == "5"
    assert "2 inactive contacts (sunset policy) are included." in texts(at)
    by_label(at.button, "Save, next: template").click()
    at.run()
    assert not at.exception, at.exception
    with session_scope() as s:
        saved = s.get(Campaign, cid).audience
        assert saved["include_inactive"] is True
        assert campaigns.audiences.count_recipients(s, setup.actor, saved)["recipients"] == 5


def _sent_parent(s):
    """A campaign sent to r0..r3: r0 opened."""
    setup = make_setup(s, contacts=4)
    cid = make_campaign(s, setup, name="Launch")
    campaign = s.get(Campaign, cid)
    campaign.status, campaign.started_at = "sent", clock.now() - timedelta(hours=3)
    for contact in s.scalars(select(Contact).where(Contact.workspace_id == setup.workspace_id)):
        s.add(
            Message(
                workspace_id=setup.workspace_id,
                campaign_id=cid,
                contact_id=contact.id,
                email=contact.email,
                status="sent",
                sent_at=clock.now() - timedelta(hours=3),
                variant_id=campaign.variants[0].id,
            )
        )
    s.flush()
    from core.ingest.store import NewEvent, store_events

    r0 = s.scalars(select(Message).where(Message.email == "r0@example.com")).one()
    store_events(
        s,
        [
            NewEvent(
                workspace_id=setup.workspace_id, type="open", dedupe_key="o0",
                occurred_at=clock.now(), source="own", message=r0, contact_id=r0.contact_id,
            )
        ],
    )  # fmt: skip
    return setup, cid


def test_resend_from_the_campaign_list_and_the_combined_reach_on_the_report(live_db):
    with session_scope() as s:
        setup, parent = _sent_parent(s)
        first = resends.first_send(s, s.get(Campaign, parent))
    at = sign_in(new_app(), setup.actor.email)
    at.switch_page("pages/campaigns.py").run()
    assert by_label(at.selectbox, "Campaign").value == parent
    by_label(at.button, "Resend to non-openers").click()
    at.run()
    assert not at.exception, at.exception
    assert by_label(at.metric, "Would receive it now").value == "3"
    assert by_label(at.text_input, "New subject").value == "Hi {{ first_name }}"
    assert "need the AI assistant" in texts(at)  # no key here: the rest works without it
    zone = ZoneInfo(by_label(at.selectbox, "Time zone").value)
    proposed = (first + timedelta(hours=48)).astimezone(zone)
    assert by_label(at.date_input, "Date").value == proposed.date()
    by_label(at.text_input, "New subject").input("Still time, {{ first_name }}")
    at.run()
    by_label(at.button, "Create and schedule").click()
    at.run()
    assert not at.exception, at.exception
    with session_scope() as s:
        resend = s.scalars(select(Campaign).where(Campaign.parent_campaign_id == parent)).one()
        assert resend.status == "scheduled"
        assert resend.variants[0].subject == "Still time, {{ first_name }}"
    assert "is scheduled for" in texts(at)

    # The report of the parent shows the family's reach (the resend has sent nothing yet).
    at.switch_page("pages/reports.py").run()
    assert not at.exception, at.exception
    assert by_label(at.metric, "People reached").value == "4"
    assert by_label(at.metric, "People who opened").value == "1"
    frame = next(d for d in at.dataframe if "Kind" in d.value.columns).value
    assert list(frame["Kind"]) == ["First send", "Resend"]
    assert list(frame["Recipients"]) == [4, 0]


def test_settings_save_the_sunset_policy_and_recompute(live_db):
    with session_scope() as s:
        setup, parent = _sent_parent(s)
        for m in s.scalars(select(Message).where(Message.campaign_id == parent)):
            m.sent_at = clock.now() - timedelta(days=10)
    at = sign_in(new_app(), setup.actor.email)
    at.switch_page("pages/settings.py").run()
    assert not at.exception, at.exception
    assert by_label(at.metric, "Inactive contacts now").value == "0"
    by_label(at.number_input, "Campaigns received without a human open or a click").set_value(1)
    by_label(at.number_input, "Over at least (days)").set_value(7)
    by_label(at.button, "Save and recompute").click()
    at.run()
    assert not at.exception, at.exception
    assert "Saved: 3 contacts are inactive now." in texts(at)
    with session_scope() as s:
        policy = sunset.get_policy(s, setup.actor)
        assert (policy.min_campaigns, policy.min_days) == (1, 7)
