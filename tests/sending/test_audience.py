"""The audience snapshot: subscribed, not suppressed, one row per contact."""

from __future__ import annotations

from sqlalchemy import select

from core.campaigns import audience
from core.campaigns import service as campaigns
from core.infra import clock
from core.models import Campaign, Message
from core.sending import pipeline as sending
from tests.helpers import make_contact, make_workspace
from tests.sending.builders import add_excluded, make_campaign, make_setup


def test_snapshot_excludes_unsubscribed_suppressed_and_duplicates(session):
    setup = make_setup(session, contacts=6)
    excluded = add_excluded(session, setup)
    other = make_workspace(session)
    make_contact(session, other, email="r0@example.com")  # same address, other workspace
    cid = make_campaign(session, setup)

    counts = audience.count_recipients(
        session, setup.actor, {"list_ids": [setup.list_id, setup.other_list_id]}
    )
    assert counts == {"chosen": 10, "recipients": 6}

    campaign = session.get(Campaign, cid)
    campaign.status = "scheduled"
    session.flush()
    assert audience.snapshot(session, campaign) == 6
    # A second snapshot (a start task delivered twice) adds nobody.
    assert audience.snapshot(session, campaign) == 0
    rows = session.execute(
        select(Message.email, Message.status, Message.variant_id).where(Message.campaign_id == cid)
    ).all()
    emails = sorted(r.email for r in rows)
    assert emails == sorted(f"r{i}@example.com" for i in range(6))
    assert not set(emails) & set(excluded)
    assert {r.status for r in rows} == {"queued"}
    assert {r.variant_id for r in rows} == {campaign.variants[0].id}


def test_start_snapshots_and_dispatches_batches(session, enqueued, monkeypatch):
    from core.infra.config import settings

    monkeypatch.setattr(settings, "send_batch_size", 4)
    setup = make_setup(session, contacts=10)
    cid = make_campaign(session, setup)
    campaigns.send_now(session, setup.actor, cid)
    session.commit()
    assert enqueued[-1] == ("worker.tasks_sending.start_campaign", (cid,), {})
    enqueued.clear()

    def sessions():  # the pipeline opens its own transactions: here, savepoints of the test's
        return session

    assert sending.start_campaign(sessions, cid) is True
    assert sending.start_campaign(sessions, cid) is False  # second delivery: nothing
    batches = [e for e in enqueued if e[0] == sending.BATCH_TASK]
    assert len(batches) == 3
    ids = session.scalars(select(Message.id).where(Message.campaign_id == cid)).all()
    assert batches[0][1] == (cid, min(ids), sorted(ids)[3])
    campaign = session.get(Campaign, cid)
    assert campaign.status == "sending"
    assert campaign.variants[0].html  # content snapshot
    assert clock.as_utc(campaign.started_at) is not None
