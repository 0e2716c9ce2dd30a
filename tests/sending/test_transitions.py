"""Core's checks and the Campaigns page's buttons read one transition table: for every
campaign status, each action works exactly where the table allows it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from core.campaigns import resend
from core.campaigns import service as campaigns
from core.infra.errors import ValidationFailed
from core.models import Campaign, Contact, Message
from core.models.statuses import Action, CampaignStatus, allowed, allowed_actions
from core.sending import pipeline as sending
from tests.sending.builders import make_campaign, make_setup

CALLS = {
    Action.EDIT: lambda s, a, cid: campaigns.update_setup(
        s, a, cid, name="Renamed", subject="Hi", from_name="Acme", from_email="news@acme.io"
    ),
    Action.SEND: lambda s, a, cid: campaigns.send_now(s, a, cid),
    Action.PAUSE: campaigns.pause,
    Action.RESUME: campaigns.resume,
    Action.CANCEL: campaigns.cancel,
    Action.RETRY_FAILED: campaigns.retry_failed,
    Action.CLONE: campaigns.clone_campaign,
    Action.DELETE: campaigns.delete_campaign,
    Action.RESEND: lambda s, a, cid: resend.create_resend(s, a, cid),
}


@pytest.mark.parametrize("status", list(CampaignStatus))
def test_core_does_exactly_what_the_table_allows(session, status):
    setup = make_setup(session, contacts=2)
    for action, call in CALLS.items():
        cid = make_campaign(session, setup, name=f"{status} {action}")
        session.get(Campaign, cid).status = status
        contact = session.scalars(select(Contact).limit(1)).first()
        session.add(
            Message(
                workspace_id=setup.workspace_id,
                campaign_id=cid,
                contact_id=contact.id,
                email=contact.email,
                status="failed",
            )
        )
        session.flush()
        with session.begin_nested():
            try:
                call(session, setup.actor, cid)
                done = True
            except ValidationFailed as exc:
                done = False
                if not allowed(action, status, failed=1):
                    assert allowed(action, status).reason in str(exc)
        assert done == bool(allowed(action, status, failed=1)), (action, status)


def test_retry_is_offered_only_when_something_failed():
    assert not allowed_actions("sent", failed=0)[Action.RETRY_FAILED]
    assert "nothing to send again" in allowed_actions("sent", failed=0)[Action.RETRY_FAILED].reason
    assert allowed_actions("sent", failed=3)[Action.RETRY_FAILED]
    assert allowed_actions("sending")[Action.DELETE].reason.startswith("Pause and cancel")


def test_a_campaign_test_send_checks_the_address_like_the_template_editor(live_db, outbox):
    from core.infra.db import session_scope
    from core.models import AuditLog
    from tests.helpers import outbox_messages

    with session_scope() as s:
        setup = make_setup(s, contacts=1)
        cid = make_campaign(s, setup)
    with session_scope() as s, pytest.raises(ValidationFailed):
        sending.send_test(s, setup.actor, cid, "not an address")
    with session_scope() as s:
        sending.send_test(s, setup.actor, cid, "  Me@Example.COM ")
    [msg] = outbox_messages(outbox)
    assert msg["To"] == "me@example.com" and msg["Subject"].startswith("[Test]")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    with session_scope() as s:
        logged = s.scalars(select(AuditLog.target).where(AuditLog.action == "campaign_test_sent"))
        assert list(logged) == ["me@example.com"]


def test_the_list_watches_sending_and_soon_due_campaigns():
    from dataclasses import replace
    from datetime import timedelta

    from core.campaigns.service import CampaignRow
    from core.infra import clock

    row = CampaignRow(
        id=1, name="x", status="draft", subject="", created_at=clock.now(),
        scheduled_at=None, started_at=None, finished_at=None,
        recipients=10, queued=3, sent=5, failed=0, error="", held=2,
    )  # fmt: skip
    assert not row.live and row.unsent == 5
    assert replace(row, status="sending").live
    soon, later = clock.now() + timedelta(minutes=30), clock.now() + timedelta(hours=2)
    assert replace(row, status="scheduled", scheduled_at=soon).live
    assert not replace(row, status="scheduled", scheduled_at=later).live
