"""A person opens a campaign report in headless Chromium and sees its charts."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.infra.db import session_scope
from core.models import Workspace
from tests.analytics.dataset import build_known
from tests.browser.conftest import backend, live_app, page, sign_in  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_report_with_charts(live_app, page, tmp_path):  # noqa: F811
    with session_scope() as session:
        ws = session.scalar(select(Workspace).where(Workspace.slug == "acme"))
        known = build_known(session, ws.id)
    page.set_default_timeout(90_000)  # the machine is shared: give a loaded run time
    sign_in(page, live_app)
    page.goto(f"{live_app.url}/reports?campaign={known.campaign_id}")
    page.get_by_role("heading", name="Reports").wait_for()
    page.get_by_text("Unique opens").first.wait_for()
    page.locator(".js-plotly-plot").nth(3).wait_for()
    assert page.locator(".js-plotly-plot").count() >= 4  # outcome, funnel, timeline, links
    assert page.get_by_text("Opens and clicks over time").first.is_visible()
    assert page.get_by_text("Top links").first.is_visible()
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
