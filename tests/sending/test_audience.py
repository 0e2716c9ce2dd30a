"""The audience snapshot: subscribed, not suppressed, one row per contact."""

from __future__ import annotations

from sqlalchemy import select

from core.campaigns import audience
from core.campaigns import service as campaigns
from core.infra import clock
from core.models import Campaign, Contact, Message
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
    assert counts == {"chosen": 10, "recipients": 6, "inactive": 0}

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


def _combined(session):
    """Lists, a segment and picks that overlap, plus contacts none of them may mail."""
    from core.models import Workspace
    from core.segments import create_segment

    setup = make_setup(session, contacts=6)  # r0..r5 in Customers; r0, r2, r4 in Newsletter too
    excluded = add_excluded(session, setup)  # in Customers, none may receive anything
    ws = session.get(Workspace, setup.workspace_id)
    for i, city in enumerate(["Lyon", "Lyon", "Porto"]):  # in no list
        make_contact(session, ws, email=f"s{i}@example.com", city=city)
    make_contact(session, ws, email="gone@example.com", city="Lyon", status="unsubscribed")
    make_contact(session, ws, email="r1-twin@example.com", city="Lyon")
    # r1 is in Customers and in the segment and picked: one message.
    session.get(Contact, _id(session, "r1@example.com")).city = "Lyon"
    segment = create_segment(
        session, setup.actor, "Lyon", {"match": "all", "rules": [
            {"field": "city", "op": "eq", "value": "Lyon"}]}
    )  # fmt: skip
    picks = [
        _id(session, e) for e in ("r1@example.com", "s2@example.com", "unsubscribed@example.com")
    ]
    chosen = {"list_ids": [setup.other_list_id], "segment_id": segment.id, "contact_ids": picks}
    return setup, excluded, chosen


def _id(session, email: str) -> int:
    return session.scalar(select(Contact.id).where(Contact.email == email))


def test_count_equals_the_snapshot_for_lists_a_segment_and_picks_together(session):
    setup, excluded, chosen = _combined(session)
    # Newsletter r0 r2 r4; segment Lyon: s0 s1 r1 r1-twin (and the unsubscribed "gone");
    # picks: r1 (again), s2, and an unsubscribed contact.
    expected = {"r0", "r2", "r4", "s0", "s1", "r1", "r1-twin", "s2"}
    counts = audience.count_recipients(session, setup.actor, chosen)
    assert counts == {"chosen": len(expected) + 2, "recipients": len(expected), "inactive": 0}

    cid = make_campaign(session, setup)
    campaigns.update_audience(session, setup.actor, cid, chosen)
    campaign = session.get(Campaign, cid)
    campaign.status = "scheduled"
    session.flush()
    assert audience.snapshot(session, campaign) == counts["recipients"]
    emails = session.scalars(select(Message.email).where(Message.campaign_id == cid)).all()
    assert sorted(emails) == sorted(f"{e}@example.com" for e in expected)
    assert not set(emails) & {*excluded, "gone@example.com"}
    # The review's sample is the first recipient, and the first of its preview choices.
    first = audience.first_recipient(session, setup.actor, chosen)
    sample = audience.sample_recipients(session, setup.actor, chosen, 3)
    assert first is not None and first.email == "r0@example.com"
    assert [c.email for c in sample] == ["r0@example.com", "r1@example.com", "r2@example.com"]


def test_the_count_is_one_query_over_contacts(session):
    from sqlalchemy import event

    setup, _excluded, chosen = _combined(session)
    statements: list[str] = []

    def seen(conn, cursor, statement, params, context, executemany):
        statements.append(statement)

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", seen)
    try:
        audience.count_recipients(session, setup.actor, chosen)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    # Loading the segment's rules may take its own query; the counting is one statement.
    counting = [s for s in statements if "count(" in s.lower()]
    assert len(counting) == 1, statements
    assert "FROM contact" in counting[0]


def test_picked_contacts_stay_in_this_workspace(session):
    setup = make_setup(session, contacts=2)
    other = make_workspace(session)
    stranger = make_contact(session, other, email="stranger@example.com")
    mine = _id(session, "r0@example.com")
    found = audience.picked_contacts(session, setup.actor, [mine, stranger.id, mine])
    assert [c.email for c in found] == ["r0@example.com"]
    assert audience.first_recipient(session, setup.actor, {"contact_ids": []}) is None
