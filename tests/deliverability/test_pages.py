"""The guard on screen, through app.py with AppTest: the banner for owners and admins (not
editors) until someone looks, the reason on the report, the limits in Settings, and
resuming past the guard after a confirmation that records who."""

from __future__ import annotations

from sqlalchemy import select

from core import deliverability
from core.infra.db import session_scope
from core.models import CampaignGuard, Event, Message, Workspace
from tests.helpers import make_campaign_with_ledger, make_user, make_workspace
from tests.pages.apptest import by_label, new_app, sign_in, texts

REASON = "Paused automatically: 9.1% hard bounces after 220 delivered (limit 4%)"


def seed() -> tuple[str, str, str, int]:
    """A workspace whose campaign the guard has just paused; (owner, admin, editor, id)."""
    with session_scope() as session:
        ws = make_workspace(session, "acme")
        emails = [make_user(session, ws, role).email for role in ("owner", "admin", "editor")]
    return emails[0], emails[1], emails[2], paused_campaign("acme")


def paused_campaign(slug: str) -> int:
    """A sending campaign of workspace `slug` with 220 reports, 20 of them hard bounces,
    paused by the guard (as the SNS drain does it)."""
    with session_scope() as session:
        ws = make_workspace(session, slug)
        campaign = make_campaign_with_ledger(session, ws, "Spring sale", "sending", ["sent"] * 220)
        rows = session.execute(
            select(Message.id, Message.contact_id).where(Message.campaign_id == campaign.id)
        ).all()
        session.add_all(
            Event(
                workspace_id=ws.id,
                campaign_id=campaign.id,
                message_id=mid,
                contact_id=contact_id,
                type="bounce" if i < 20 else "delivered",
                bounce_type="hard" if i < 20 else None,
                source="ses",
                dedupe_key=f"guard-page-{mid}",
            )
            for i, (mid, contact_id) in enumerate(rows)
        )
        session.flush()
        assert deliverability.check_campaigns(session, [campaign.id]) == [campaign.id]
        return campaign.id


def test_banner_report_settings_and_resume_past_the_guard(live_db):
    owner, admin, editor, cid = seed()

    at = sign_in(new_app(), editor)
    assert not at.exception, at.exception
    assert "Paused automatically" not in texts(at)  # editors get no banner

    at = sign_in(new_app(), admin)
    assert f"“Spring sale”** {REASON}" in texts(at)  # on the dashboard, above the page
    at.switch_page("pages/settings.py").run()
    assert REASON in texts(at), "the banner is on every page"
    by_label(at.number_input, "Pause at hard bounces above (%)").set_value(3.0)
    by_label(at.button, "Save limits").click().run()
    assert not at.exception, at.exception
    assert "The guard pauses at 3 % hard bounces or 0.08 % complaints." in texts(at)
    with session_scope() as session:
        ws = session.scalar(select(Workspace).where(Workspace.slug == "acme"))
        assert (ws.guard_bounce_limit, ws.guard_complaint_limit) == (0.03, 0.0008)

    # "Open report": the reason there, and having looked ends the banner for everyone.
    at.button(key=f"guard_look_{cid}").click().run()
    assert not at.exception, at.exception
    shown = texts(at)
    assert "Reports" in shown and f"{REASON} (" in shown
    assert "Resume it on the Campaigns page: that overrides the guard, with your name." in shown
    at = sign_in(new_app(), owner)
    assert "Paused automatically" not in texts(at)
    with session_scope() as session:
        assert session.get(CampaignGuard, cid).acknowledged_by_id is not None

    # Resume asks first, then records who overrode the guard.
    at.switch_page("pages/campaigns.py").run()
    at.button(key="cw_Resume").click().run()
    assert not at.exception, at.exception
    assert f"{REASON}. Resume anyway?" in texts(at)
    with session_scope() as session:
        assert session.get(CampaignGuard, cid).overrides == 0, "asking changes nothing"
    at.button(key=f"cw_confirm_override_{cid}_yes").click().run()
    assert not at.exception, at.exception
    assert "you overrode the deliverability guard (recorded)" in texts(at)
    with session_scope() as session:
        row = session.get(CampaignGuard, cid)
        assert row.overrides == 1 and row.overridden_by_id is not None
    # The report no longer says to resume, and names who overrode the guard.
    at.switch_page("pages/reports.py").run()
    shown = texts(at)
    assert "Resume it on the Campaigns page" not in shown
    assert f"overridden 1 time, last by {owner}" in shown
