"""The dashboard shows a campaign sent a minute ago with no rollup built, and the Data page
rebuilds the rollups through a real worker when an editor clicks Rebuild now."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import insert, select

from core.infra import clock
from core.infra.db import session_scope
from core.models import Campaign, Event, Message, Workspace
from tests.browser.conftest import LiveApp, _start, sign_in
from tests.helpers import make_contact
from tests.processes import start_worker

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def app_and_worker(live_db: str, tmp_path: Path) -> Iterator[LiveApp]:
    """Streamlit and a Celery worker without beat (so no rollup is built unless asked)."""
    app = _start(tmp_path, live_db, webhook=False, worker=False)
    app.procs.insert(0, start_worker(app.env, tmp_path / "worker.log", beat=False))
    yield app
    for proc in reversed(app.procs):
        proc.stop()


def send_a_campaign(name: str, n: int) -> int:
    """What the worker and the webhook leave behind a minute after sending: `n` sent
    messages, each delivered, one opened."""
    sent_at = clock.now() - timedelta(minutes=1)
    with session_scope() as s:
        ws = s.scalar(select(Workspace).where(Workspace.slug == "acme"))
        campaign = Campaign(workspace_id=ws.id, name=name, status="sent", started_at=sent_at)
        s.add(campaign)
        s.flush()
        events = []
        for i in range(n):
            contact = make_contact(s, ws, email=f"reader{i}-{campaign.id}@example.com")
            mid = s.scalar(
                insert(Message).returning(Message.id),
                {
                    "workspace_id": ws.id,
                    "campaign_id": campaign.id,
                    "contact_id": contact.id,
                    "email": contact.email,
                    "status": "sent",
                    "sent_at": sent_at,
                },
            )
            for type_ in ("delivered", "open") if i == 0 else ("delivered",):
                events.append(
                    {
                        "workspace_id": ws.id,
                        "campaign_id": campaign.id,
                        "message_id": mid,
                        "contact_id": contact.id,
                        "type": type_,
                        "occurred_at": sent_at,
                        "source": "own" if type_ == "open" else "ses",
                        "dedupe_key": f"{campaign.id}-{mid}-{type_}",
                    }
                )
        s.execute(insert(Event), events)
        return campaign.id


def metric(page, label: str):
    return page.get_by_test_id("stMetric").filter(has_text=label)


def test_live_dashboard_and_rebuild_now(app_and_worker, page):
    app = app_and_worker
    page.set_default_timeout(90_000)  # the machine is shared: give a loaded run time
    send_a_campaign("Sent a minute ago", 3)
    assert not (app.data_dir / "rollups.duckdb").exists()

    sign_in(page, app)
    expect(metric(page, "Emails sent, all time")).to_contain_text("3")
    expect(metric(page, "Emails sent, 30 days")).to_contain_text("3")
    expect(metric(page, "Average open rate")).to_contain_text("33.3%")
    expect(page.get_by_text("Sent a minute ago").first).to_be_visible()
    body = page.locator("section.main, [data-testid='stMain']").first.inner_text()
    assert "–" not in body and "python -m" not in body
    expect(page.get_by_text("counted from the database")).to_be_visible()

    page.get_by_role("link", name="Data").click()
    page.get_by_role("heading", name="Data").wait_for()
    expect(page.get_by_text("have not been built yet").first).to_be_visible()
    page.get_by_role("button", name="Rebuild now").click()
    # .first: while Streamlit redraws, the old copy of a line may still be on the page.
    built = page.get_by_text(
        re.compile(r"Built (just now|\d+ minutes? ago) \(.*\), up to event")
    ).first
    expect(built).to_be_visible(timeout=120_000)
    first = built.inner_text()
    assert (app.data_dir / "rollups.duckdb").exists()
    assert "up to event #4" in first  # 3 deliveries and an open

    send_a_campaign("Sent just now", 1)  # its delivery and open come after the build
    page.get_by_role("button", name="Rebuild now").click()
    expect(page.get_by_text(re.compile(r"up to event #6\b")).first).to_be_visible(timeout=120_000)
    assert built.inner_text() != first
    expect(page.get_by_role("button", name="Rebuild now")).to_be_enabled()
