"""A marketer opens a running welcome series in headless Chromium (issue 18): the list, the
flow as cards with the branch's then and else side by side and live figures on them, a
wait changed through its form, and the automation report with sends per day.

With MAILWRIGHT_SHOTS set to a folder, the screens are kept there (docs/screens/)."""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from core.automations import create_automation, run_pass
from core.contacts.lists import add_members
from core.infra import clock
from core.infra.db import get_sessionmaker, session_scope
from core.ingest.own import record_open
from core.models import (
    Automation,
    ContactList,
    CustomField,
    Message,
    Segment,
    Template,
    Workspace,
)
from tests.automations.test_engine import HUMAN, NoLimit, Recorder
from tests.browser.conftest import settle, sign_in
from tests.helpers import actor_of, make_contact, make_user

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SHOTS = os.environ.get("MAILWRIGHT_SHOTS", "")  # a folder to keep the screenshots in
PEOPLE = ["ann", "bob", "cy", "dee", "eve", "fay", "gus", "hal", "ida", "jo", "kim", "lou"]


def _shot(page, tmp_path: Path, name: str, height: int = 1000) -> None:
    """The screen at 1400 × `height` (Streamlit scrolls inside the page: a full-page shot
    is only the window)."""
    path = tmp_path / f"{name}.png"
    page.set_viewport_size({"width": 1400, "height": height})
    settle(page)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 900})
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(SHOTS) / path.name)


def _welcome_series_with_a_week_of_history() -> int:
    """Welcome → wait 2 days → opened? Tips : Offer, activated nine days ago; a few people
    join each day, about half open the welcome mail."""
    start = clock.now() - timedelta(days=9)
    clock.freeze(start)
    try:
        with session_scope() as session:
            ws = session.scalar(select(Workspace).where(Workspace.slug == "acme"))
            assert ws is not None
            ws.from_email, ws.from_name, ws.max_send_rate = "hello@acme.io", "Acme", 1000
            actor = actor_of(make_user(session, ws, role="editor"))
            templates = {}
            for name, subject in (
                ("Welcome", "Welcome to Acme"),
                ("Tips", "Three tips for your first week"),
                ("Offer", "20 % off, this week only"),
            ):
                template = Template(
                    workspace_id=ws.id, name=name, subject=subject, html="<p>Hi</p>"
                )
                session.add(template)
                session.flush()
                templates[name] = template.id
            newsletter = ContactList(workspace_id=ws.id, name="Newsletter")
            session.add_all([newsletter, ContactList(workspace_id=ws.id, name="Needs a nudge")])
            session.flush()
            definition = {
                "name": "Welcome series",
                "trigger": {"type": "list_joined", "list": "Newsletter"},
                "steps": [
                    {"send": {"template_id": templates["Welcome"]}},
                    {"wait": {"days": 2}, "until_time": "09:00"},
                    {
                        "branch": {
                            "if": {"opened": "previous"},
                            "then": [{"send": {"template_id": templates["Tips"]}}],
                            "else": [
                                {
                                    "send": {
                                        "template_id": templates["Offer"],
                                        "subject": "Last chance",
                                    }
                                },
                                {"update": {"add_list": "Needs a nudge"}},
                            ],
                        }
                    },
                ],
            }
            automation_id = create_automation(session, actor, definition).id
            contacts = [
                make_contact(session, ws, email=f"{n}@example.com", first_name=n.title())
                for n in PEOPLE
            ]
            list_id, ids = newsletter.id, [c.id for c in contacts]
        transport = Recorder()
        for day in range(8):
            clock.freeze(start + timedelta(days=day + 1, hours=1))
            joining = ids[day * 3 // 2 : (day + 1) * 3 // 2]
            with session_scope() as session:
                add_members(session, actor, list_id, joining)
            run_pass(get_sessionmaker(), transport=transport, rate_limiter=NoLimit())
            clock.advance(timedelta(hours=2))
            with session_scope() as session:
                fresh = session.scalars(
                    select(Message.id).where(
                        Message.automation_id == automation_id,
                        Message.step_path == "0",
                        Message.contact_id.in_(joining),
                    )
                ).all()
                for message_id in fresh[::2]:
                    record_open(session, actor, message_id, HUMAN, "203.0.113.9")
    finally:
        clock.reset()
    return automation_id


def _card(page, path: str):
    return page.locator(f".st-key-au_card_{path.replace('.', '_')}")


def test_open_edit_and_report_an_automation(live_app, page, tmp_path):
    automation_id = _welcome_series_with_a_week_of_history()
    page.set_default_timeout(90_000)
    sign_in(page, live_app)
    page.goto(f"{live_app.url}/automations")
    page.get_by_role("heading", name="Automations").wait_for()
    page.locator("[data-testid=stDataFrame]").wait_for()
    settle(page)
    _shot(page, tmp_path, "automation-list")

    page.get_by_role("button", name="Open automation").click()
    settle(page)
    page.get_by_role("heading", name="Welcome series").wait_for()
    welcome = _card(page, "0")
    expect(welcome).to_contain_text("Send “Welcome”")
    expect(welcome).to_contain_text("Sent 12")
    expect(welcome).to_contain_text("Open rate 67%")  # 8 of 12 opened
    then, other = _card(page, "2.then.0"), _card(page, "2.else.0")
    expect(then).to_contain_text("Send “Tips”")
    expect(other).to_contain_text("subject “Last chance”")
    a, b = then.bounding_box(), other.bounding_box()
    assert a and b and abs(a["y"] - b["y"]) < 5 and b["x"] > a["x"] + a["width"]  # side by side
    expect(page.get_by_text("Contacts are in this automation")).to_be_visible()
    _shot(page, tmp_path, "automation-editor", height=1500)

    # The wait becomes three days, through its form.
    _card(page, "1").get_by_role("button", name="Edit").click()
    settle(page)
    amount = _card(page, "1").get_by_label("Wait for")
    amount.fill("3")
    _card(page, "1").get_by_role("button", name="Save step").click()
    settle(page)
    expect(page.get_by_text("Saved step 2.")).to_be_visible()
    expect(_card(page, "1")).to_contain_text("Wait 3 days, then until 09:00")
    with session_scope() as session:
        saved = session.get(Automation, automation_id)
        assert saved is not None
        assert saved.definition["steps"][1]["wait"] == {"days": 3}

    page.get_by_role("button", name="Report").click()
    page.get_by_role("heading", name="Reports").wait_for()
    page.get_by_role("tab", name="Automation report", selected=True).wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    settle(page)
    expect(page.get_by_role("cell", name="Send “Welcome”")).to_be_visible()
    _shot(page, tmp_path, "automation-report", height=1250)


def test_a_new_automation_on_a_date_from_the_form(live_app, page, tmp_path):
    """ "New automation" offers every trigger: the date's inputs appear when it is chosen,
    with the offset's help, and the draft opens in the editor."""
    with session_scope() as session:
        ws = session.scalar(select(Workspace).where(Workspace.slug == "acme"))
        assert ws is not None
        session.add_all(
            [
                Template(workspace_id=ws.id, name="Renewal reminder", subject="Soon", html="<p>"),
                ContactList(workspace_id=ws.id, name="Newsletter"),
                CustomField(workspace_id=ws.id, key="renewal", label="Renewal", type="date"),
                Segment(
                    workspace_id=ws.id,
                    name="Berliners",
                    rules={"match": "all", "rules": [{"field": "city", "op": "eq", "value": "B"}]},
                ),
            ]
        )
    sign_in(page, live_app, "automations", "Automations")
    page.get_by_text("New automation").click()
    settle(page)
    page.get_by_label("Contacts enter when they…").click()
    page.get_by_role("option", name="reach a date").click()
    # The choice reruns the page: wait for what only the new run draws, then for the run to
    # end (a settle right after the click could pass before the rerun began, and the old
    # copy of the form stood beside the new one: two "Name" inputs).
    page.get_by_label("Date field").wait_for()
    settle(page)
    page.get_by_label("Name").fill("A week before renewal")
    days = page.get_by_role("spinbutton", name="Days from the date")
    days.fill("-7")
    days.press("Tab")
    page.get_by_label("Date field").click()
    expect(page.get_by_role("option", name="Renewal", exact=True)).to_be_visible()
    page.get_by_role("option", name="Renewal", exact=True).click()
    settle(page)
    _shot(page, tmp_path, "automation-new", height=900)
    page.get_by_role("button", name="Create draft").click()
    settle(page)
    page.get_by_role("heading", name="A week before renewal").wait_for()
    expect(page.get_by_text("7 days before the date in “Renewal”")).to_be_visible()
    with session_scope() as session:
        saved = session.scalar(select(Automation).where(Automation.name == "A week before renewal"))
        assert saved is not None
        assert saved.definition["trigger"]["offset_days"] == -7
