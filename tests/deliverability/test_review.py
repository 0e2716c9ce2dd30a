"""The campaign review step under AppTest while the workspace's last 30 days are at an SES
review level: the rates shown, "Send now" held for an admin, an owner's override ticked,
asked, and recorded."""

from __future__ import annotations

from core.infra.db import session_scope
from core.models import Campaign, CampaignGuard, Workspace
from tests.deliverability.test_standing import add_events
from tests.helpers import make_user
from tests.pages.apptest import by_label, new_app, sign_in, texts
from tests.sending.builders import make_campaign, make_setup


def review(email: str, campaign_id: int):
    at = sign_in(new_app(), email)
    at.switch_page("pages/campaigns.py").run()
    at.session_state["cw_campaign"] = campaign_id
    at.session_state["cw_step"] = 3
    at.run()
    assert not at.exception, at.exception
    return at


def test_over_a_review_level_only_an_owner_sends_and_it_is_recorded(live_db, enqueued):
    with session_scope() as s:
        setup = make_setup(s, contacts=3)
        ws = s.get(Workspace, setup.workspace_id)
        admin = make_user(s, ws, "admin").email
        cid = make_campaign(s, setup, "Winter")
        add_events(s, ws.id, "sent", 1000)
        add_events(s, ws.id, "complaint", 2)  # 0.2 % complaints: over SES's 0.1 %

    at = review(admin, cid)
    shown = texts(at)
    assert "0.200% complaints of 1,000 sent" in shown
    assert "only an owner can send now" in shown
    assert by_label(at.button, "Send now").disabled
    assert by_label(at.button, "Schedule").disabled

    at = review(setup.actor.email, cid)
    assert by_label(at.button, "Send now").disabled
    by_label(
        at.checkbox, "Send anyway: I am an owner and override the guard (recorded with my name)"
    ).check()
    at.run()
    assert not by_label(at.button, "Send now").disabled
    by_label(at.button, "Send now").click().run()
    by_label(at.button, "Yes, send now").click().run()
    assert not at.exception, at.exception
    with session_scope() as s:
        assert s.get(Campaign, cid).status == "scheduled"
        row = s.get(CampaignGuard, cid)
        assert row.send_override_by_id == setup.actor.user_id
        assert row.send_override_detail["complaints"] == 2
