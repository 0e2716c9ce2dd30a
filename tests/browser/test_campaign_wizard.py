"""The campaign wizard in Chromium: recipients from a list, a segment and a contact picked by
search, counted before sending; an A/B test whose review shows its settings, the subjects as
a recipient reads them, and the warning when the test share is too small for a winner."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from core.infra.db import session_scope
from core.models import Campaign, ContactList, ListMembership, Template, User, Workspace
from core.segments import create_segment
from tests.browser.conftest import sign_in
from tests.helpers import actor_of, make_contact

pytestmark = [pytest.mark.browser, pytest.mark.slow]
FRIENDS = 300


def _fresh(page: Page) -> Locator:
    """Elements of the current run, not stale copies a rerun is about to replace (the picker
    is rebuilt when its options change; the last step's elements linger for a moment)."""
    return page.locator('[data-testid="stElementContainer"]:not([data-stale="true"])')


def _field(page: Page, label: str) -> Locator:
    """The combobox of the multiselect or selectbox labelled `label`."""
    return _fresh(page).get_by_role("combobox", name=label, exact=True)


def _metric(page: Page, label: str) -> Locator:
    return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue")


def _seed() -> None:
    with session_scope() as s:
        ws = s.scalar(select(Workspace).where(Workspace.slug == "acme"))
        ws.from_email, ws.from_name = "news@acme.io", "Acme"
        s.add(Template(workspace_id=ws.id, name="Spring", subject="Spring",
                       html="<p>Hello {{ first_name }}</p>"))  # fmt: skip
        friends = ContactList(workspace_id=ws.id, name="Friends")
        s.add(friends)
        s.flush()
        people = [
            ("ana@example.com", "Ana", "Lyon"),  # in the list and the segment
            ("bo@example.com", "Bo", ""),
            ("cy@example.com", "Cy", ""),
            ("dee@example.com", "Dee", "Lyon"),  # the segment only
            ("solene@example.com", "Solène", ""),  # picked by search
            ("nobody@example.com", "Nobody", ""),  # chosen by nothing
        ]
        for email, name, city in people:
            contact = make_contact(s, ws, email=email, first_name=name, city=city)
            if email in ("ana@example.com", "bo@example.com", "cy@example.com"):
                s.add(ListMembership(list_id=friends.id, contact_id=contact.id))
        for i in range(FRIENDS):  # enough for a test share, too few for a winner at 5%
            contact = make_contact(s, ws, email=f"friend{i}@example.com")
            s.add(ListMembership(list_id=friends.id, contact_id=contact.id))
        lost = make_contact(s, ws, email="lost@example.com", city="Lyon", status="unsubscribed")
        s.add(ListMembership(list_id=friends.id, contact_id=lost.id))
        owner = s.scalar(select(User).where(User.workspace_id == ws.id))
        create_segment(s, actor_of(owner), "Lyon", {"match": "all", "rules": [
            {"field": "city", "op": "eq", "value": "Lyon"}]})  # fmt: skip


def test_recipients_union_and_the_ab_review_in_the_browser(live_app, page):
    _seed()
    sign_in(page, live_app, "campaigns", "Campaigns")
    page.get_by_label("New campaign name").fill("Spring test")
    page.get_by_role("button", name="Create campaign").click()
    page.get_by_label("Subject").fill("Hello {{ first_name | default('there') }}")
    page.get_by_label("Subject").press("Tab")
    page.get_by_role("button", name="Save, next: recipients").click()

    # Recipients: a list, a segment and one contact found by search, added up.
    page.get_by_text("Lists, a segment or specific contacts").click()
    _field(page, "Lists").click()
    page.get_by_role("option", name=re.compile("^Friends")).click()
    page.keyboard.press("Escape")
    expect(_metric(page, "Will receive it")).to_have_text("303")  # not "lost": unsubscribed
    _field(page, "Segment").click()
    page.get_by_role("option", name="Lyon").click()
    expect(_metric(page, "Will receive it")).to_have_text("304")  # + Dee; Ana counted once
    page.get_by_label("Find contacts").fill("sol")
    page.get_by_label("Find contacts").press("Enter")
    expect(page.get_by_text("1 found")).to_be_visible()
    _field(page, "Chosen contacts").click()
    page.get_by_role("option", name="Solène <solene@example.com>").click()
    page.keyboard.press("Escape")
    expect(_metric(page, "Will receive it")).to_have_text("305")
    expect(page.get_by_text(re.compile(r"^306 chosen;"))).to_be_visible()
    page.get_by_role("button", name="Save, next: template").click()

    # Template step: an A/B test with the smallest test share.
    page.get_by_text("A/B test this campaign").click()
    page.get_by_label("Subject B").fill("{{ first_name }}, spring is here")
    page.get_by_label("Subject B").press("Tab")
    share = page.get_by_role("slider").first
    share.focus()
    for _ in range(3):  # 20% -> 15 -> 10 -> 5
        page.keyboard.press("ArrowLeft")
    expect(page.get_by_text(re.compile(r"2\.5% of the audience"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"\(7 to 8 per variant\)"))).to_be_visible()
    expect(page.get_by_text(re.compile("no automatic winner will be declared"))).to_be_visible()
    page.get_by_role("button", name="Save, next: review").click()

    # Review: the settings, the subjects rendered for the first recipient, the warning.
    expect(page.get_by_role("heading", name="A/B test")).to_be_visible()
    expect(_metric(page, "Test share")).to_have_text("5%")
    expect(_metric(page, "Winner rule")).to_have_text("Click rate")
    expect(_metric(page, "Waiting time")).to_have_text("4 hours")
    expect(page.get_by_text("Variant A: Hello Ana")).to_be_visible()
    expect(page.get_by_text("Variant B: Ana, spring is here")).to_be_visible()
    expect(page.get_by_text("rendered for ana@example.com")).to_be_visible()
    warning = _fresh(page).get_by_test_id("stAlert").filter(has_text="per variant")
    expect(warning).to_have_text(
        "7 to 8 per variant: below 100, no automatic winner will be declared; raise the test "
        "share or choose manual."
    )
    # The preview below follows the chosen variant, for the first recipient.
    expect(_fresh(page).get_by_test_id("stText")).to_have_text("Hello Ana")
    page.get_by_text("Variant B", exact=True).click()
    expect(_fresh(page).get_by_test_id("stText")).to_have_text("Ana, spring is here")
    main = page.get_by_test_id("stMain").inner_text()
    assert "{{" not in main and "Recipients: 305" in main
    with session_scope() as s:
        campaign = s.scalar(select(Campaign).where(Campaign.name == "Spring test"))
        assert campaign.ab_test_share == 5 and len(campaign.variants) == 2
        assert len(campaign.audience["contact_ids"]) == 1
