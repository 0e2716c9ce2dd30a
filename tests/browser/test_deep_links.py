"""A link to any page opens that page: signed in, or after signing in with one click.

Issue 21: under load, a new session's first run sometimes fell back to the dashboard at
`/`, and the first "Sign in" click was sometimes dropped. `make test-browser-stress` runs
these tests 20 times with a busy loop on every core."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from core.infra.db import session_scope
from core.models import Campaign, Workspace
from tests.analytics.dataset import build_known
from tests.browser.conftest import sign_in
from tests.browsers import CONTEXT

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# (URL path, the page's heading)
PAGES = [
    ("", "Dashboard"),
    ("dashboard", "Dashboard"),  # its name in every other link: not "Page not found"
    ("contacts", "Contacts"),
    ("segments", "Segments"),
    ("templates", "Templates"),
    ("campaigns", "Campaigns"),
    ("reports", "Reports"),
    ("data", "Data"),
    ("settings", "Settings"),
]


@pytest.fixture
def asked_campaign(live_app) -> tuple[int, str]:
    """Sent campaigns to report on; returns one that is not the Reports page's default."""
    with session_scope() as session:
        ws = session.scalar(select(Workspace).where(Workspace.slug == "acme"))
        known = build_known(session, ws.id)
        campaign = session.get(Campaign, known.smtp_campaign_id)
        return campaign.id, campaign.name


def _links(campaign_id: int) -> list[tuple[str, str, str]]:
    """(path, query, heading) for Reports on one campaign, then every page.

    The first link is the server's first visit: Streamlit used to decide on it whether
    pages/ meant its old multipage mode (see ui/server.py)."""
    return [("reports", f"campaign={campaign_id}", "Reports")] + [
        (path, "", heading) for path, heading in PAGES
    ]


def _assert_on(page, app, path: str, query: str, heading: str) -> None:
    title = page.get_by_role("heading", name=re.compile(f"^{heading}")).first
    title.wait_for()
    # A late rerun could still swap the page: look again once the run has settled.
    page.wait_for_timeout(500)
    assert title.is_visible(), f"{heading} was replaced; the address is {page.url}"
    address = urlsplit(page.url)
    assert address.path.strip("/") == path, f"asked for /{path}, the address is {page.url}"
    # Reports adds ?campaign= itself; an asked-for query must survive as it was.
    assert not query or address.query == query, f"asked for ?{query}, got {page.url}"


def _assert_report_on(page, name: str) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_role("combobox", name="Campaign")).to_have_value(re.compile(re.escape(name)))


def _open_signed_out(page, live_app, links, name: str) -> None:
    """Each link in a new browser (a new session), signed in with one click there."""
    browser = page.context.browser
    for path, query, heading in links:
        context = browser.new_context(**CONTEXT)
        fresh = context.new_page()
        fresh.set_default_timeout(45_000)
        try:
            address = path + (f"?{query}" if query else "")
            sign_in(fresh, live_app, address, heading)
            _assert_on(fresh, live_app, path, query, heading)
            if query:
                _assert_report_on(fresh, name)
        finally:
            context.close()


# The first link must be the server's first visit (see _links): a server of its own.
@pytest.mark.own_server
def test_a_link_opened_signed_out_lands_there_after_one_sign_in_click(
    live_app, page, asked_campaign
):
    campaign_id, name = asked_campaign
    _open_signed_out(page, live_app, _links(campaign_id)[:1], name)


def test_every_page_opened_signed_out_lands_there_after_one_sign_in_click(
    live_app, page, asked_campaign
):
    """The other links, on the shared server (its first visit is the test above's job)."""
    campaign_id, name = asked_campaign
    _open_signed_out(page, live_app, _links(campaign_id)[1:], name)


def test_a_link_opened_signed_in_opens_that_page(live_app, page, asked_campaign):
    campaign_id, name = asked_campaign
    sign_in(page, live_app, "settings", "Settings")
    for path, query, heading in _links(campaign_id):
        # A full page load: a new Streamlit session, signed in from the cookie.
        page.goto(f"{live_app.url}/{path}" + (f"?{query}" if query else ""))
        _assert_on(page, live_app, path, query, heading)
        if query:
            _assert_report_on(page, name)
