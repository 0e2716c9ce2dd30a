"""The segment builder in headless Chromium: add a condition, watch the count, save."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.infra.db import session_scope
from core.models import Contact, Segment, User

# The browser fixtures live in tests/browser/conftest.py; bring them (SQLite only) here.
from tests.browser.conftest import backend, live_app, page, sign_in  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_build_and_save_a_segment_in_the_browser(live_app, page):  # noqa: F811
    with session_scope() as session:
        ws = session.scalar(select(User.workspace_id).where(User.email == live_app.email))
        for email, city in (("a@x.io", "Paris"), ("b@x.io", "PARIS"), ("c@x.io", "Lyon")):
            session.add(Contact(workspace_id=ws, email=email, city=city))
    sign_in(page, live_app)
    page.goto(f"{live_app.url}/segments")
    page.get_by_role("heading", name="Segments").first.wait_for()
    metric = page.get_by_test_id("stMetricValue")
    metric.filter(has_text="3").wait_for()

    page.get_by_role("button", name="Add condition").click()
    value = page.get_by_label("Value", exact=True)
    value.fill("paris")
    value.press("Enter")
    metric.filter(has_text="2").wait_for()
    page.get_by_text("b@x.io").first.wait_for(state="attached")  # a canvas grid cell

    page.get_by_label("Segment name", exact=True).fill("Parisians")
    page.get_by_label("Segment name", exact=True).press("Enter")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Saved segment 'Parisians'.").wait_for()
    with session_scope() as session:
        saved = session.scalar(select(Segment).where(Segment.name == "Parisians"))
        assert saved.rules["rules"][0] == {"field": "city", "op": "eq", "value": "paris"}
