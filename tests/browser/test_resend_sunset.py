"""Issue 19 in Chromium: resend a sent campaign to its non-openers from the campaign list,
the report's combined reach, Settings → Inactive contacts, and the wizard's count of the
inactive contacts it leaves out. MAILWRIGHT_SHOTS=folder keeps the screenshots."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from core.infra import clock
from core.infra.db import session_scope
from core.ingest.store import NewEvent, store_events
from core.models import Campaign, ContactList, ListMembership, Message, Template, Variant, Workspace
from tests.browser.conftest import settle, shot, sign_in
from tests.helpers import make_contact

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _seed() -> int:
    """A campaign sent three hours ago to six people: r0 opened, r1 clicked, r4 and r5 are
    inactive by the sunset policy."""
    with session_scope() as s:
        ws = s.scalar(select(Workspace).where(Workspace.slug == "acme"))
        ws.from_email, ws.from_name = "news@acme.io", "Acme"
        html = "<p>Hello {{ first_name }}, our spring range is here.</p>"
        template = Template(workspace_id=ws.id, name="Spring", subject="Spring is here", html=html)
        friends = ContactList(workspace_id=ws.id, name="Friends")
        s.add_all([template, friends])
        s.flush()
        sent_at = clock.now() - timedelta(hours=3)
        campaign = Campaign(
            workspace_id=ws.id, name="Spring launch", status="sent", started_at=sent_at,
            finished_at=sent_at, from_email="news@acme.io", from_name="Acme",
            audience={"list_ids": [friends.id]},
        )  # fmt: skip
        campaign.variants.append(
            Variant(label="A", subject="Spring is here", template_id=template.id, html=html)
        )
        s.add(campaign)
        s.flush()
        messages = []
        for i in range(6):
            contact = make_contact(s, ws, email=f"r{i}@example.com", first_name=f"Name{i}")
            s.add(ListMembership(list_id=friends.id, contact_id=contact.id))
            if i >= 4:
                contact.inactive_since = clock.now() - timedelta(days=2)
            message = Message(
                workspace_id=ws.id, campaign_id=campaign.id, contact_id=contact.id,
                email=contact.email, status="sent", sent_at=sent_at,
                variant_id=campaign.variants[0].id,
            )  # fmt: skip
            s.add(message)
            messages.append(message)
        s.flush()
        events = [
            NewEvent(workspace_id=ws.id, type=t, dedupe_key=f"{t}{i}", occurred_at=clock.now(),
                     source="own", message=messages[i], contact_id=messages[i].contact_id)
            for i, t in ((0, "open"), (1, "click"))
        ]  # fmt: skip
        store_events(s, events)
        return campaign.id


def test_resend_reach_sunset_settings_and_the_wizard(live_app, page, tmp_path):
    parent = _seed()
    sign_in(page, live_app, "campaigns", "Campaigns")
    page.get_by_role("button", name="Resend to non-openers").click()
    settle(page)
    expect(page.get_by_text("Would receive it now")).to_be_visible()
    expect(page.get_by_text("2 of them are inactive by the sunset policy")).to_be_visible()
    page.get_by_role("button", name="Create and schedule").scroll_into_view_if_needed()
    shot(page, tmp_path, "resend-form")
    subject = page.get_by_label("New subject")
    subject.fill("Still thinking about spring, {{ first_name }}?")
    subject.press("Tab")
    settle(page)
    page.get_by_role("button", name="Create and schedule").click()
    settle(page)
    expect(page.get_by_text("is scheduled for").first).to_be_visible()
    with session_scope() as s:
        resend = s.scalars(select(Campaign).where(Campaign.parent_campaign_id == parent)).one()
        assert resend.status == "scheduled"
        assert resend.variants[0].subject == "Still thinking about spring, {{ first_name }}?"

    page.goto(f"{live_app.url}/reports?campaign={parent}")
    expect(page.get_by_text("Combined reach with resends")).to_be_visible(timeout=45_000)
    settle(page)
    page.get_by_text("Combined reach with resends").scroll_into_view_if_needed()
    shot(page, tmp_path, "resend-reach")

    page.goto(f"{live_app.url}/settings")
    page.get_by_role("tab", name="Inactive contacts").click()
    expect(page.get_by_text("Sunset policy")).to_be_visible(timeout=45_000)
    settle(page)
    shot(page, tmp_path, "sunset-settings")

    page.goto(f"{live_app.url}/campaigns")
    page.get_by_label("New campaign name").fill("Summer")
    page.get_by_role("button", name="Create campaign").click()
    page.get_by_role("button", name="Save, next: recipients").click()
    settle(page)
    page.get_by_text("All subscribed contacts").click()
    settle(page)
    expect(page.get_by_text("2 inactive contacts left out")).to_be_visible(timeout=45_000)
    shot(page, tmp_path, "recipients-inactive")
