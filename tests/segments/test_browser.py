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


# Every text in the builder that Streamlit clips with an ellipsis, and every widget label
# that wraps onto a second line (the bug: "Fi", "di", "Add c…", "Conditio/n").
CLIPPED = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  const out = [];
  for (const el of main.querySelectorAll('*')) {
    const style = getComputedStyle(el);
    if (style.textOverflow === 'ellipsis' && el.scrollWidth > el.clientWidth + 1) {
      out.push('clipped: ' + el.textContent.trim());
    }
  }
  for (const label of main.querySelectorAll('[data-testid="stWidgetLabel"] p')) {
    const line = parseFloat(getComputedStyle(label).lineHeight) || 20;
    if (label.textContent.trim() && label.offsetHeight > line * 1.5) {
      out.push('wrapped: ' + label.textContent.trim());
    }
  }
  return out;
}"""


def test_builder_rows_are_readable_and_a_new_rule_waits_for_its_value(live_app, page):  # noqa: F811
    sign_in(page, live_app)
    page.goto(f"{live_app.url}/segments")
    page.get_by_role("heading", name="Segments").first.wait_for()
    page.get_by_role("button", name="Add condition").click()
    page.get_by_label("Value", exact=True).wait_for()
    # A condition added a moment ago says nothing is wrong; it is just not counted yet.
    page.get_by_text("1 new condition left out of the count").wait_for()
    assert page.get_by_test_id("stAlert").count() == 0

    page.get_by_role("button", name="Add group").first.click()
    page.get_by_text("A group matching").wait_for()
    page.get_by_label("Condition").nth(1).click()
    page.get_by_role("option", name="Activity").click()
    page.get_by_label("Campaign").wait_for()
    page.get_by_role("button", name="Remove group").wait_for()
    page.wait_for_timeout(500)
    assert page.evaluate(CLIPPED) == []
    # Each rule has its remove button, inside the builder's width.
    removes = page.locator(
        "[class*='st-key-seg_'][class*='_remove'] [data-testid^=stBaseButton]:visible"
    )
    assert removes.count() == 3  # two conditions and the group
    width = page.get_by_test_id("stMain").bounding_box()["width"]
    for i in range(removes.count()):
        box = removes.nth(i).bounding_box()
        assert box["width"] >= 30 and box["x"] + box["width"] <= width + 400

    # Saving still checks every condition, with the reason.
    page.get_by_label("Segment name", exact=True).fill("Half done")
    page.get_by_label("Segment name", exact=True).press("Enter")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("needs a text value").wait_for()
