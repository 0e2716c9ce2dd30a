"""A marketer reads a sent campaign's report and manages invitations in headless Chromium,
and the app asks nothing of any host but its own (issue 16)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from core.infra.db import session_scope
from core.models import Invitation, Workspace
from tests.analytics.dataset import build_known
from tests.browser.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RAW_NAMES = re.compile(r"campaign_id|unique_opens|_rate\b|delivered_estimated|\bCTO\b")


def _outside_requests(page, app_url: str) -> list[str]:
    """Every request the page makes to a host other than the app's, as it happens."""
    own = urlsplit(app_url).hostname
    seen: list[str] = []

    def check(request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname != own:
            seen.append(request.url)

    page.on("request", check)
    return seen


def _chart_text(page) -> str:
    # Plotly draws in SVG: textContent, not innerText, holds its labels.
    return " ".join(page.locator(".js-plotly-plot").all_text_contents())


def test_report_settings_and_nothing_leaves(live_app, page):
    outside = _outside_requests(page, live_app.url)
    with session_scope() as session:
        ws = session.scalar(select(Workspace).where(Workspace.slug == "acme"))
        known = build_known(session, ws.id)
    page.set_default_timeout(90_000)  # the machine is shared: give a loaded run time
    sign_in(page, live_app)

    # A campaign sent through a transport without delivery reports: one slice only.
    page.goto(f"{live_app.url}/reports?campaign={known.smtp_campaign_id}")
    page.get_by_role("heading", name="Reports").wait_for()
    page.locator(".js-plotly-plot").nth(1).wait_for()
    donut = page.locator(".js-plotly-plot").first
    donut.locator("text.slicetext").first.wait_for()
    slices = donut.locator("text.slicetext").all_text_contents()
    assert slices == ["100%"], slices  # the empty parts used to print piled-up "0%" labels
    assert "Delivered (estimated): 2" in donut.text_content()
    # Waited for, then read: under load the rates can still be drawing below the charts.
    expect(page.locator("body")).to_contain_text("Click-to-open rate")
    body = page.locator("body").inner_text()
    assert "Click-to-open rate" in body
    assert "Of the people who opened, the share who also clicked" in body
    assert not RAW_NAMES.search(body + _chart_text(page)), RAW_NAMES.search(body)
    for chart in page.locator(".js-plotly-plot").all():  # every axis has a title
        axes = chart.locator("g.xtick, g.ytick").count()
        titles = chart.locator("text.xtitle, text.ytitle").count()
        assert axes == 0 or titles >= 2, chart.text_content()

    # Campaigns side by side, in words.
    page.get_by_role("tab", name="Compare campaigns").click()
    picker = page.locator("[data-testid=stMultiSelect]").first
    for name in ("November news", "Over SMTP"):
        picker.click()
        page.keyboard.type(name)
        page.keyboard.press("Enter")
        page.keyboard.press("Escape")
        picker.get_by_text(f"{name} · sent").wait_for()  # chosen, and still on this tab
    page.get_by_text("Rates compared").first.wait_for()
    page.get_by_role("cell", name="People who opened", exact=True).wait_for()
    # Waited for, not read once: under load the table can still be drawing.
    expect(page.get_by_role("cell", name="≈ 2", exact=True).first).to_be_visible()
    # Waited for, then read: under load the rates can still be drawing below the charts.
    expect(page.locator("body")).to_contain_text("Click-to-open rate")
    body = page.locator("body").inner_text()
    assert "Click-to-open rate" in body
    assert not RAW_NAMES.search(body + _chart_text(page))
    table = page.locator("[data-testid=stTable]").last.inner_text()
    assert "uncertain" not in table and "Sent, not confirmed" in table

    # Settings → Users: invite, see it pending, revoke it (asked first), gone.
    page.goto(f"{live_app.url}/settings")
    page.get_by_role("heading", name="Settings").wait_for()
    expect(page.get_by_text("nothing leaves this machine").first).to_be_visible()
    page.get_by_role("tab", name="Users").click()
    page.get_by_label("Email", exact=True).fill("pending.person@example.com")
    page.get_by_role("button", name="Send invitation").click()
    row = page.locator("[class*='st-key-invitation_']").filter(has_text="pending.person@")
    row.wait_for()
    assert "as editor" in row.inner_text()
    row.get_by_role("button", name="Revoke").click()
    page.get_by_text("Revoke the invitation to pending.person@example.com?").wait_for()
    page.get_by_role("button", name="Yes, revoke it").click()
    page.get_by_text("Revoked the invitation to pending.person@example.com.").wait_for()
    page.get_by_text("No invitation is waiting to be accepted.").wait_for()
    assert row.count() == 0
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Invitation)) == 0

    # The page icon is served by the app itself; nothing was fetched from elsewhere.
    icon = page.locator("link[rel*='icon']").first.get_attribute("href") or ""
    assert not urlsplit(icon).hostname or urlsplit(icon).hostname == "127.0.0.1", icon
    assert outside == [], outside
