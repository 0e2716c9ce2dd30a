"""Resend to non-openers: the audience on a known mix, the send through the real pipeline
(evaluated at its start), the combined reach, the transition table, and the CLI."""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from core.analytics.reports.reach import combined_reach
from core.campaigns import audience
from core.campaigns import resend as resends
from core.campaigns import service as campaigns
from core.infra import clock
from core.infra.db import session_scope
from core.infra.errors import ValidationFailed
from core.ingest.store import NewEvent, store_events
from core.models import Campaign, Contact, ListMembership, Message, Suppression, Workspace
from tests.helpers import make_contact, outbox_messages
from tests.processes import PROCESS_BACKEND
from tests.sending.builders import make_campaign, make_setup
from tests.sending.test_pipeline import run_tasks
from tests.test_cli import run_cli

# r0 opened, r1 clicked, r2 only machine-opened, r3 soft-bounced, r4 hard-bounced,
# r5 unsubscribed since, r6 nothing, r7 suppressed since, r8 opened as seen by SES only
# (the workspace counts its own pixel), r9 failed to send.
EXPECTED = {"r2@example.com", "r6@example.com", "r8@example.com"}
_keys = itertools.count()


def _event(s, message: Message, type_: str, **fields) -> None:
    store_events(
        s,
        [
            NewEvent(
                workspace_id=message.workspace_id,
                type=type_,
                dedupe_key=f"{type_}:{message.id}:{next(_keys)}",
                occurred_at=clock.now(),
                source=fields.pop("source", "own"),
                message=message,
                contact_id=message.contact_id,
                email=message.email,
                **fields,
            )
        ],
    )


def send_parent(live_db, enqueued) -> tuple:
    """A campaign sent through the pipeline to r0..r9, then the mix of what came back."""
    with session_scope() as s:
        setup = make_setup(s, contacts=10)
        cid = make_campaign(s, setup)
        campaigns.send_now(s, setup.actor, cid)
    run_tasks(enqueued)
    with session_scope() as s:
        by_email = {
            m.email: m for m in s.scalars(select(Message).where(Message.campaign_id == cid))
        }
        failed = by_email["r9@example.com"]
        failed.status, failed.sent_at = "failed", None
        _event(s, by_email["r0@example.com"], "open")
        _event(s, by_email["r1@example.com"], "click", url="https://example.org/offer")
        _event(s, by_email["r2@example.com"], "open", is_machine=True)
        _event(s, by_email["r3@example.com"], "bounce", bounce_type="soft")
        _event(s, by_email["r4@example.com"], "bounce", bounce_type="hard")
        _event(s, by_email["r5@example.com"], "unsubscribe")
        s.add(Suppression(workspace_id=setup.workspace_id, email="r7@example.com", reason="manual"))
        _event(s, by_email["r8@example.com"], "open", source="ses")
        # Joined after the parent went out: never received it, so no resend either.
        ws = s.get(Workspace, setup.workspace_id)
        late = make_contact(s, ws, email="late@example.com")
        s.add(ListMembership(list_id=setup.list_id, contact_id=late.id))
    return setup, cid


def test_non_openers_on_a_known_mix_and_the_resend_through_the_pipeline(live_db, enqueued, outbox):
    setup, parent = send_parent(live_db, enqueued)
    first_batch = len(outbox_messages(outbox))
    with session_scope() as s:
        plan = resends.plan_resend(s, setup.actor, parent)
        assert plan.non_openers == len(EXPECTED) and plan.inactive_left_out == 0
        assert plan.subject == "Hi {{ first_name }}"
        first = resends.first_send(s, s.get(Campaign, parent))
        # 48 hours after the first send (that is still ahead here).
        assert plan.proposed_at == first + timedelta(hours=48)
        picked = s.scalars(
            audience.recipients_query(
                s, setup.workspace_id, {"resend_of": parent}
            ).with_only_columns(Contact.email)
        ).all()
        assert set(picked) == EXPECTED
        draft = resends.create_resend(
            s, setup.actor, parent, "Did you miss this, {{ first_name }}?"
        )
        rid = draft.id
        assert draft.status == "draft" and draft.parent_campaign_id == parent
        assert clock.as_utc(draft.scheduled_at) == plan.proposed_at  # proposed, not scheduled
        assert draft.audience["resend_of"] == parent
        assert draft.variants[0].html == s.get(Campaign, parent).variants[0].html
        assert campaigns.problems(s, setup.actor, draft) == []

    # Evaluated when it starts: r2 opens (as a person) between creation and send.
    with session_scope() as s:
        message = s.scalars(
            select(Message).where(Message.campaign_id == parent, Message.email == "r2@example.com")
        ).one()
        _event(s, message, "open", user_agent="Mozilla/5.0 (Windows NT 10.0) Thunderbird/128")
    with session_scope() as s:
        campaigns.send_now(s, setup.actor, rid)
    run_tasks(enqueued)
    mails = outbox_messages(outbox)[first_batch:]
    assert sorted(m["To"] for m in mails) == ["r6@example.com", "r8@example.com"]
    assert {m["Subject"] for m in mails} == {
        "Did you miss this, Name6?",
        "Did you miss this, Name8?",
    }
    with session_scope() as s:
        assert campaigns.campaign_status(s, setup.actor, rid)["sent"] == 2
        # The combined reach, from either campaign's report: people, each counted once.
        rid_msg = s.scalars(
            select(Message).where(Message.campaign_id == rid, Message.email == "r6@example.com")
        ).one()
        _event(s, rid_msg, "open", user_agent="Mozilla/5.0 (Macintosh) AppleWebKit Mail")
    with session_scope() as s:
        reach = combined_reach(s, setup.actor, rid)
        assert reach == combined_reach(s, setup.actor, parent)
        # 9 received the parent (r9 failed); r0, r2 and r6 opened (r8's open was SES's);
        # r1 clicked.
        assert (reach.recipients, reach.opened, reach.clicked) == (9, 3, 1)
        parts = {p.campaign_id: (p.recipients, p.opened, p.clicked) for p in reach.parts}
        assert parts == {parent: (9, 2, 1), rid: (2, 1, 0)}
        assert [p.is_resend for p in reach.parts] == [False, True]
        assert combined_reach(s, setup.actor, make_campaign(s, setup, name="Alone")) is None
        # Deleting the parent leaves the resend, unlinked.
        campaigns.delete_campaign(s, setup.actor, parent)
        s.flush()
        assert s.get(Campaign, rid).parent_campaign_id is None


def test_only_a_sent_campaign_is_resent_and_schedules_need_a_zone(session):
    setup = make_setup(session, contacts=2)
    cid = make_campaign(session, setup)
    with pytest.raises(ValidationFailed, match="Only a sent campaign"):
        resends.create_resend(session, setup.actor, cid)
    session.get(Campaign, cid).status = "sent"
    with pytest.raises(ValidationFailed, match="time zone"):
        resends.create_resend(session, setup.actor, cid, at=datetime(2030, 1, 1, 9))
    # Nobody received it yet: the proposal is a few minutes from now, and the resend
    # cannot be sent to nobody.
    plan = resends.plan_resend(session, setup.actor, cid)
    assert plan.non_openers == 0
    assert timedelta(0) < plan.proposed_at - clock.now() <= resends.SOON
    with pytest.raises(ValidationFailed, match="cannot be sent"):
        resends.create_resend(
            session, setup.actor, cid, at=clock.now() + timedelta(hours=1), schedule=True
        )


# A process boundary: one backend (PostgreSQL when TEST_DATABASE_URL is set); the SQL
# behind it runs on both in this package's in-process tests.
@pytest.mark.parametrize("backend", [PROCESS_BACKEND])
def test_the_cli_schedules_a_resend_and_prints_its_id_last(live_db, enqueued, tmp_path):
    setup, parent = send_parent(live_db, enqueued)
    at = (clock.now() + timedelta(days=2)).replace(microsecond=0)
    done = run_cli(
        tmp_path, live_db, "resend-non-openers", str(parent), "--subject", "Second chance",
        "--at", at.isoformat(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    rid = int(lines[-1])
    summary = json.loads(lines[-2])
    assert summary["status"] == "scheduled" and summary["non_openers_now"] == len(EXPECTED)
    with session_scope() as s:
        resend = s.get(Campaign, rid)
        assert (resend.status, resend.parent_campaign_id) == ("scheduled", parent)
        assert resend.variants[0].subject == "Second chance"
        assert clock.as_utc(resend.scheduled_at) == at
    draft = run_cli(tmp_path, live_db, "resend-non-openers", str(parent), "--draft")
    assert draft.returncode == 0, draft.stderr
    with session_scope() as s:
        second = s.get(Campaign, int(draft.stdout.strip().splitlines()[-1]))
        assert second.status == "draft" and second.variants[0].subject == "Hi {{ first_name }}"
    refused = run_cli(tmp_path, live_db, "resend-non-openers", str(rid))
    assert refused.returncode == 2 and "Only a sent campaign" in refused.stderr
    bad = run_cli(tmp_path, live_db, "resend-non-openers", str(parent), "--at", "tomorrow")
    assert bad.returncode == 2 and "ISO-8601" in bad.stderr
