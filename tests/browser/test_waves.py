"""Issue 19 in Chromium: a campaign sending in time-zone waves, on the campaign list and in
its report. MAILWRIGHT_SHOTS=folder keeps the screenshots (docs/screens/tz-waves.png)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import select, update

from core.campaigns import service as campaigns
from core.campaigns import waves
from core.infra import clock
from core.infra.db import get_sessionmaker, session_scope
from core.infra.permissions import Actor
from core.models import Campaign, ContactList, ListMembership, Message, Template, Workspace
from core.sending import pipeline
from tests.browser.conftest import settle, shot, sign_in
from tests.helpers import make_contact

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ZONES = {
    "Asia/Kolkata": 3,
    "Asia/Tokyo": 2,
    "Europe/London": 2,
    "America/New_York": 3,
    "America/Los_Angeles": 2,
    "Australia/Sydney": 1,
    None: 4,  # the workspace's zone (Europe/Berlin)
}


def _seed() -> int:
    """A campaign at 09:00 in each contact's zone that started 12 hours ago: the waves due
    so far are sent, the rest wait."""
    with session_scope() as s:
        ws = s.scalar(select(Workspace).where(Workspace.slug == "acme"))
        ws.from_email, ws.from_name, ws.timezone = "news@acme.io", "Acme", "Europe/Berlin"
        template = Template(
            workspace_id=ws.id, name="Morning", subject="Good morning", html="<p>Hello</p>"
        )
        people = ContactList(workspace_id=ws.id, name="Everyone")
        s.add_all([template, people])
        s.flush()
        n = 0
        for zone, count in ZONES.items():
            for _ in range(count):
                contact = make_contact(s, ws, email=f"z{n}@example.com", timezone=zone)
                s.add(ListMembership(list_id=people.id, contact_id=contact.id))
                n += 1
        actor = Actor.system(ws.id)
        campaign = campaigns.create_campaign(s, actor, "Morning news")
        campaigns.update_template(s, actor, campaign.id, template.id)
        campaigns.update_audience(s, actor, campaign.id, {"list_ids": [people.id]})
        campaign.status = "scheduled"
        campaign.scheduled_at = clock.now() - timedelta(hours=12)
        campaign.local_send_time = "09:00"
        cid = campaign.id
    assert pipeline.start_campaign(get_sessionmaker(), cid)
    with session_scope() as s:  # the due waves went out (the worker's part, not tested here)
        s.execute(
            update(Message)
            .where(Message.campaign_id == cid, Message.due_at <= clock.now())
            .values(status="sent", sent_at=clock.now(), updated_at=clock.now())
        )
        assert s.get(Campaign, cid).status == "sending"
    return cid


def test_the_waves_on_the_list_and_in_the_report(live_app, page, tmp_path):
    cid = _seed()
    sign_in(page, live_app, "campaigns", "Campaigns")
    expect(page.get_by_text("Time-zone waves").first).to_be_visible(timeout=45_000)
    # Seven zones, seven waves (the workspace's Europe/Berlin among them); which have had
    # their 09:00 twelve hours after the start depends on the time of day the test runs.
    with session_scope() as s:
        found = waves.campaign_waves(s, Actor.system(s.get(Campaign, cid).workspace_id), cid)
    summary = waves.waves_summary(found)
    assert len(found) == 7 and summary.startswith("sending in waves: ")
    # The list's grid holds the same text in a hidden accessibility cell: the visible line.
    expect(page.get_by_text(summary).filter(visible=True).first).to_be_visible()
    settle(page)
    shot(page, tmp_path, "tz-waves-list")

    page.goto(f"{live_app.url}/reports?campaign={cid}")
    heading = page.get_by_text("Time-zone waves", exact=False).first
    expect(heading).to_be_visible(timeout=45_000)
    settle(page)
    heading.scroll_into_view_if_needed()
    expect(page.get_by_text(summary).filter(visible=True).first).to_be_visible()
    # The report refreshes itself while the campaign sends: shoot a drawn table, not a
    # placeholder between two refreshes.
    settle(page)
    expect(page.locator("[data-testid='stDataFrame'] canvas").first).to_be_visible()
    shot(page, tmp_path, "tz-waves")
