"""The Campaigns list follows a sending campaign by itself: no navigating away and back."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect
from sqlalchemy import select, update

from core.infra.db import session_scope
from core.models import Campaign, Message, Workspace
from tests.browser.conftest import sign_in
from tests.helpers import make_campaign_with_ledger, make_contact

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_sending_campaigns_progress_updates_on_its_own(live_app, page):
    with session_scope() as s:
        ws = s.scalar(select(Workspace).where(Workspace.slug == "acme"))
        campaign = make_campaign_with_ledger(s, ws, "Live news", "sending", ["queued"] * 3)
        campaign_id = campaign.id
    sign_in(page, live_app, "campaigns", "Campaigns")
    expect(page.get_by_text(re.compile(r"0 sent, 0 failed of 3"))).to_be_visible()
    with session_scope() as s:  # the worker's part, done here
        s.execute(update(Message).where(Message.campaign_id == campaign_id).values(status="sent"))
    expect(page.get_by_text(re.compile(r"3 sent, 0 failed of 3"))).to_be_visible(timeout=15_000)


@pytest.fixture
def paris_page(chromium):
    """A browser in Paris: the list must show times in the viewer's zone, not the server's."""
    page = chromium.new_page(timezone_id="Europe/Paris", locale="en-US")
    yield page
    page.context.close()


def test_a_scheduled_row_shows_its_estimate_a_badge_and_local_time(live_app, paris_page):
    page = paris_page
    with session_scope() as s:
        ws = s.scalar(select(Workspace).where(Workspace.slug == "acme"))
        for i in range(1203):
            make_contact(s, ws, email=f"fan{i}@example.com")
        s.add(
            Campaign(
                workspace_id=ws.id,
                name="Christmas sale",
                status="scheduled",
                audience={"all": True},
                scheduled_at=datetime(2026, 12, 20, 8, 0, tzinfo=UTC),
            )
        )
    sign_in(page, live_app, "campaigns", "Campaigns")
    grid = page.get_by_test_id("stDataFrame")
    row = grid.locator("tbody tr").filter(has_text="Christmas sale")
    row.wait_for(state="attached")
    cells = row.locator("td")
    # Before the snapshot the row shows what the review counted (the grid's accessible
    # copy holds raw numbers; the canvas draws them with the viewer's separators).
    expect(cells.nth(3)).to_have_text("1203")
    # 08:00 UTC is 09:00 in Paris, and the zone is named.
    expect(cells.nth(8)).to_have_text("2026-12-20 09:00 CET")


def test_a_sending_campaigns_report_updates_on_its_own(live_app, page):
    with session_scope() as s:
        ws = s.scalar(select(Workspace).where(Workspace.slug == "acme"))
        campaign = make_campaign_with_ledger(s, ws, "Live report", "sending", ["queued"] * 4)
        campaign_id = campaign.id
    sign_in(page, live_app, f"reports?campaign={campaign_id}", "Reports")
    refreshing = page.get_by_text("this report refreshes every 5 seconds")
    expect(refreshing.first).to_be_visible()
    sent = page.get_by_test_id("stMetric").filter(has_text="Sent").first
    expect(sent.get_by_test_id("stMetricValue")).to_have_text("0")
    with session_scope() as s:  # the worker's part, done here
        s.execute(update(Message).where(Message.campaign_id == campaign_id).values(status="sent"))
    expect(sent.get_by_test_id("stMetricValue")).to_have_text("4", timeout=20_000)
    with session_scope() as s:
        s.execute(update(Campaign).where(Campaign.id == campaign_id).values(status="sent"))
    # Finished: it no longer says it refreshes (and the page drops the timer).
    expect(refreshing).to_have_count(0, timeout=20_000)
