"""Nothing irreversible by accident: Cancel and Delete ask first in the real app, "Not now"
changes nothing, and what was done is said afterwards (issue 16)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from core.infra.db import session_scope
from core.models import Campaign, Workspace
from tests.browser.conftest import settle, sign_in
from tests.helpers import make_campaign_with_ledger

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _choose(page, name: str) -> None:
    settle(page)
    page.get_by_label("Campaign", exact=True).click()
    page.get_by_role("option", name=re.compile(re.escape(name))).click()


def test_cancel_and_delete_ask_first_and_say_what_happened(live_app, page):
    with session_scope() as s:
        ws = s.scalar(select(Workspace).where(Workspace.slug == "acme"))
        s.add(Campaign(workspace_id=ws.id, name="Old draft", status="draft"))
        make_campaign_with_ledger(s, ws, "Half sent", "paused", ["sent", "queued", "queued"])
    sign_in(page, live_app, "campaigns", "Campaigns")

    _choose(page, "Old draft")
    settle(page)
    page.get_by_role("button", name="Delete", exact=True).click()
    question = page.get_by_text(
        "Delete “Old draft”? Its messages, events and report go with it. This cannot be undone."
    )
    expect(question).to_be_visible()
    page.get_by_role("button", name="Not now").click()
    expect(question).to_have_count(0)
    with session_scope() as s:
        assert s.scalar(select(func.count()).where(Campaign.name == "Old draft")) == 1

    _choose(page, "Old draft")
    settle(page)
    page.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_role("button", name="Yes, delete it").click()
    expect(page.get_by_text("Deleted “Old draft”.")).to_be_visible()
    with session_scope() as s:
        assert s.scalar(select(func.count()).where(Campaign.name == "Old draft")) == 0

    _choose(page, "Half sent")
    settle(page)
    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(
        page.get_by_text(re.compile(r"Cancel “Half sent”\? The 2 messages not yet sent"))
    ).to_be_visible()
    page.get_by_role("button", name="Yes, cancel it").click()
    expect(page.get_by_text("Cancelled “Half sent”.")).to_be_visible()
    with session_scope() as s:
        assert s.scalar(select(Campaign.status).where(Campaign.name == "Half sent")) == "cancelled"
