"""The guard on a sending campaign, in core: SES feedback stored by the SNS drain (as the
worker runs it) pauses a campaign past its limits; resuming needs an override, recorded,
after which the guard re-arms at SES's pause levels, then lets the campaign be."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select

from core import deliverability
from core.campaigns import service as campaigns
from core.deliverability import GuardLimits, GuardOverrideNeeded
from core.infra.db import get_sessionmaker, session_scope
from core.infra.errors import PermissionDenied, ValidationFailed
from core.ingest import inbox
from core.models import AuditLog, Campaign, CampaignGuard, Message, Workspace
from core.sending import pipeline
from tests.helpers import actor_of, make_user, message_text, outbox_messages
from tests.processes import PROCESS_BACKEND
from tests.webhook.conftest import make_ledger
from tests.webhook.snsutil import TOPIC, ses_event

NOTIFY = "worker.tasks_deliverability.notify_guard_pause"


def feedback(kind: str, messages: list[Message]) -> None:
    """SES notifications for `messages`, accepted by the webhook and drained by the worker."""
    items = [
        inbox.SnsItem(
            str(uuid.uuid4()),
            "Notification",
            TOPIC,
            json.dumps(ses_event(kind, m.provider_message_id, [m.email])),
        )
        for m in messages
    ]
    with session_scope() as session:
        inbox.accept_sns_notifications(session, items)
    inbox.drain_sns_backlog(get_sessionmaker())


def campaign_state(campaign_id: int) -> tuple[str, str]:
    with session_scope() as session:
        c = session.get(Campaign, campaign_id)
        return c.status, c.error


def test_complaints_pause_the_campaign_and_an_override_re_arms_higher(live_db, enqueued):
    with session_scope() as session:
        ledger = make_ledger(session, recipients=260)
        ledger.campaign.status = "sending"
        ws = ledger.workspace
        owner = actor_of(make_user(session, ws, "owner", "owner@acme.example"))
        admin = actor_of(make_user(session, ws, "admin", "admin@acme.example"))
        editor = actor_of(make_user(session, ws, "editor", "editor@acme.example"))
        cid, messages = ledger.campaign.id, list(ledger.messages)
    # One complaint among 150 reports: 0.67 %, but fewer than 200 messages have feedback.
    feedback("Delivery", messages[:149])
    feedback("Complaint", messages[149:150])
    assert campaign_state(cid) == ("sending", "")
    # 211 with feedback, one complaint: 0.47 % > 0.08 %.
    feedback("Delivery", messages[150:211])
    status, reason = campaign_state(cid)
    assert status == "paused"
    assert reason == "Paused automatically: 0.47% complaints after 211 delivered (limit 0.08%)"
    assert [args for name, args, _ in enqueued if name == NOTIFY] == [(cid,)]

    # The mail goes to owners and admins only, once.
    with session_scope() as session:
        assert deliverability.send_pause_notices(session, cid) == 2
        assert deliverability.send_pause_notices(session, cid) == 0
    mails = outbox_messages(settings_outbox())
    assert sorted(m["To"] for m in mails) == ["admin@acme.example", "owner@acme.example"]
    assert "0.47% complaints after 211 delivered" in message_text(mails[0])
    assert f"/reports?campaign={cid}" in message_text(mails[0])

    # The banner: owners and admins, until one of them has looked.
    with session_scope() as session:
        assert [a.campaign_id for a in deliverability.open_alerts(session, owner)] == [cid]
        assert deliverability.open_alerts(session, editor) == []
        with pytest.raises(PermissionDenied):
            deliverability.acknowledge(session, editor, cid)
    with session_scope() as session:
        assert deliverability.acknowledge(session, admin, cid)
    with session_scope() as session:
        assert deliverability.open_alerts(session, owner) == []

    # Resuming asks for the override, then records who gave it.
    with session_scope() as session, pytest.raises(GuardOverrideNeeded) as asked:
        campaigns.resume(session, editor, cid)
    assert "Resume anyway?" in str(asked.value) and "10%" in str(asked.value)
    with session_scope() as session:
        campaigns.resume(session, editor, cid, override_guard=True)
    with session_scope() as session:
        row = session.get(CampaignGuard, cid)
        assert (row.overrides, row.overridden_by_id) == (1, editor.user_id)
        assert session.get(Campaign, cid).status == "sending"
        actions = session.scalars(select(AuditLog.action).order_by(AuditLog.id)).all()
        assert actions[-2:] == ["campaign_guard_paused", "guard_overridden"]

    # The same crossing does not pause again: more feedback at 0.4 % complaints.
    feedback("Delivery", messages[211:250])
    assert campaign_state(cid) == ("sending", "")
    # Re-armed at SES's pause level (0.5 %): two complaints in 251 pass it.
    feedback("Complaint", messages[250:251])
    status, reason = campaign_state(cid)
    assert status == "paused"
    assert reason.startswith("Paused automatically: 0.80% complaints after 251 delivered")
    assert "limit 0.5%, SES's pause level" in reason
    with session_scope() as session:
        assert [a.campaign_id for a in deliverability.open_alerts(session, owner)] == [cid]
        campaigns.resume(session, owner, cid, override_guard=True)
    # After a second override the guard leaves this campaign alone.
    feedback("Complaint", messages[251:255])
    assert campaign_state(cid)[0] == "sending"
    with session_scope() as session:
        row = session.get(CampaignGuard, cid)
        assert (row.pauses, row.overrides, row.overridden_by_id) == (2, 2, owner.user_id)


def settings_outbox():
    from core.infra.config import settings

    return settings.outbox_dir


def test_a_paused_campaign_claims_nothing_more(session):
    ledger = make_ledger(session, recipients=3)
    for m in ledger.messages:
        m.status = "queued"
    ledger.campaign.status = "paused"
    session.flush()
    ids = [m.id for m in ledger.messages]
    assert pipeline._claim(session, ledger.campaign.id, ids) == ([], set())
    ledger.campaign.status = "sending"
    session.flush()
    assert pipeline._claim(session, ledger.campaign.id, ids)[0] == sorted(ids)


def test_the_limits_are_set_by_owners_and_admins_within_ses_levels(session):
    ledger = make_ledger(session, recipients=1)
    admin = actor_of(make_user(session, ledger.workspace, "admin"))
    editor = actor_of(make_user(session, ledger.workspace, "editor"))
    assert deliverability.get_limits(session, editor) == GuardLimits(0.04, 0.0008)
    with pytest.raises(PermissionDenied):
        deliverability.update_limits(session, editor, GuardLimits(0.03, 0.0005))
    for bad in (GuardLimits(0.11, 0.0008), GuardLimits(0.0, 0.0008), GuardLimits(0.04, 0.006)):
        with pytest.raises(ValidationFailed):
            deliverability.update_limits(session, admin, bad)
    deliverability.update_limits(session, admin, GuardLimits(0.03, 0.0005))
    ws = session.get(Workspace, ledger.workspace.id)
    assert (ws.guard_bounce_limit, ws.guard_complaint_limit) == (0.03, 0.0005)


# A process boundary: one backend (PostgreSQL when TEST_DATABASE_URL is set); the SQL
# behind it runs on both in this package's in-process tests.
@pytest.mark.parametrize("backend", [PROCESS_BACKEND])
def test_the_cli_resumes_past_the_guard_only_when_told(live_db, tmp_path):
    from tests.test_cli import run_cli

    with session_scope() as session:
        ledger = make_ledger(session, recipients=210)
        ledger.campaign.status = "sending"
        cid, messages = ledger.campaign.id, list(ledger.messages)
    feedback("Bounce", messages[:10])
    feedback("Delivery", messages[10:])
    assert campaign_state(cid)[0] == "paused"
    refused = run_cli(tmp_path, live_db, "resume", str(cid))
    assert refused.returncode != 0 and "Resume anyway?" in refused.stderr
    done = run_cli(tmp_path, live_db, "resume", str(cid), "--override-guard")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"id": cid, "status": "sending"}
    with session_scope() as session:
        row = session.get(CampaignGuard, cid)
        assert (row.overrides, row.overridden_by_id) == (1, None)  # the system, by the CLI
