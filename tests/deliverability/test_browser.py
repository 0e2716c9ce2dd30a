"""The guard in Chromium: the banner above the dashboard, the reason on the report it
opens, the limits in Settings. MAILWRIGHT_SHOTS=docs/screens keeps the screenshots
(guard-*.png); a test run leaves the source tree alone."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import backend, live_app, page, settle, shot, sign_in  # noqa: F401
from tests.deliverability.test_pages import REASON, paused_campaign

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_banner_opens_the_report_with_the_reason(live_app, page, tmp_path):  # noqa: F811
    paused_campaign("acme")
    sign_in(page, live_app)
    banner = page.get_by_text(REASON).first
    expect(banner).to_be_visible()
    shot(page, tmp_path, "guard-banner")

    page.get_by_role("button", name="Open report").click()
    page.get_by_role("heading", name="Reports").wait_for()
    settle(page)
    expect(page.get_by_text("Resume it on the Campaigns page")).to_be_visible()
    expect(page.get_by_text("Hard / soft bounces")).to_be_visible()
    expect(page.get_by_role("button", name="Open report")).to_have_count(0)  # looked at
    shot(page, tmp_path, "guard-report")

    page.goto(f"{live_app.url}/settings")
    page.get_by_role("tab", name="Deliverability guard").click()
    settle(page)
    expect(page.get_by_label("Pause at hard bounces above (%)")).to_have_value("4.00")
    expect(page.get_by_text(REASON)).to_have_count(0)  # no banner after someone looked
    shot(page, tmp_path, "guard-settings")
