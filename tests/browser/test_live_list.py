"""The Campaigns list follows a sending campaign by itself: no navigating away and back."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select, update

from core.infra.db import session_scope
from core.models import Campaign, Message, Workspace
from tests.browser.conftest import sign_in
from tests.helpers import make_contact

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_sending_campaigns_progress_updates_on_its_own(live_app, page):
    with session_scope() as s:
        ws = s.scalar(select(Workspace).where(Workspace.slug == "acme"))
        campaign = Campaign(workspace_id=ws.id, name="Live news", status="sending")
        s.add(campaign)
        s.flush()
        for i in range(3):
            contact = make_contact(s, ws, email=f"live{i}@example.com")
            s.add(
                Message(
                    workspace_id=ws.id,
                    campaign_id=campaign.id,
                    contact_id=contact.id,
                    email=contact.email,
                    status="queued",
                )
            )
        campaign_id = campaign.id
    sign_in(page, live_app, "campaigns", "Campaigns")
    expect(page.get_by_text(re.compile(r"0 sent, 0 failed of 3"))).to_be_visible()
    with session_scope() as s:  # the worker's part, done here
        s.execute(update(Message).where(Message.campaign_id == campaign_id).values(status="sent"))
    expect(page.get_by_text(re.compile(r"3 sent, 0 failed of 3"))).to_be_visible(timeout=15_000)
