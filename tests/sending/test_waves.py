"""Sending in each contact's morning: time-zone waves on a controlled clock (issue 19)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from core.campaigns import service as campaigns
from core.campaigns import waves
from core.infra import clock
from core.infra.config import settings
from core.infra.db import get_sessionmaker, session_scope
from core.infra.errors import ValidationFailed
from core.models import Campaign, Contact, ListMembership, Message, Workspace
from tests.helpers import outbox_messages
from tests.sending.builders import make_campaign, make_setup
from tests.sending.test_pipeline import run_tasks, status_of

START = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)  # a Monday; CET, EST and NZDT are in force
# At 09:00 local, from START: each zone's wave in UTC.
KOLKATA = datetime(2026, 12, 7, 3, 30, tzinfo=UTC)  # +05:30
BERLIN = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)  # the workspace's zone, +01:00
NEW_YORK = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)  # -05:00
AUCKLAND = datetime(2026, 12, 7, 20, 0, tzinfo=UTC)  # +13:00: 09:00 on the 7th was before START
ZONES = {
    "Asia/Kolkata": 2,
    "America/New_York": 2,
    "Pacific/Auckland": 1,
    "Europe/Berlin": 1,
    None: 2,  # no zone: the workspace's
    "Mars/Olympus_Mons": 1,  # not a zone this machine knows: the workspace's too
}


def _zoned_setup():
    """A workspace in Europe/Berlin with contacts in several zones, all in its first list."""
    with session_scope() as s:
        setup = make_setup(s, contacts=0)
        ws = s.get(Workspace, setup.workspace_id)
        ws.timezone = "Europe/Berlin"
        n = 0
        for zone, count in ZONES.items():
            for _ in range(count):
                c = Contact(workspace_id=ws.id, email=f"z{n}@example.com", timezone=zone)
                s.add(c)
                s.flush()
                s.add(ListMembership(list_id=setup.list_id, contact_id=c.id))
                n += 1
        cid = make_campaign(s, setup, lists=[setup.list_id])
    return setup, cid


def _sent_to(outbox) -> Counter:
    return Counter(m["To"] for m in outbox_messages(outbox))


def _zone_emails(zones: set[str | None]) -> set[str]:
    emails, n = set(), 0
    for zone, count in ZONES.items():
        for _ in range(count):
            if zone in zones:
                emails.add(f"z{n}@example.com")
            n += 1
    return emails


def _sent_now_in_waves(enqueued):
    """The zoned campaign sent now (at START) at 09:00 in each zone; its start has run."""
    clock.freeze(START)
    setup, cid = _zoned_setup()
    with session_scope() as s:
        campaigns.send_now(s, setup.actor, cid, local_time="09:00")
    run_tasks(enqueued)
    return setup, cid


def _tick_and_run(enqueued) -> dict:
    result = waves_tick()
    run_tasks(enqueued)
    return result


def waves_tick() -> dict:
    from core.sending import pipeline as sending

    return sending.tick(get_sessionmaker())


def test_waves_go_out_as_each_zone_reaches_the_time_once_each(live_db, enqueued, outbox):
    clock.freeze(START - timedelta(hours=1))
    setup, cid = _zoned_setup()
    with session_scope() as s:
        plan = waves.plan_waves(s, setup.actor, {"list_ids": [setup.list_id]}, "09:00", START)
        assert [w.due_at for w in plan.waves] == [KOLKATA, BERLIN, NEW_YORK, AUCKLAND]
        assert (plan.recipients, plan.zones) == (9, 4)
        assert plan.waves[0].local("Asia/Kolkata") == "09:00 IST"
        campaigns.schedule(s, setup.actor, cid, START, local_time="9:00")
    clock.freeze(START)
    assert _tick_and_run(enqueued)["started"] == [cid]
    assert _sent_to(outbox) == Counter()  # nobody's 09:00 yet
    with session_scope() as s:
        dues = Counter(
            clock.as_utc(d)
            for d in s.scalars(select(Message.due_at).where(Message.campaign_id == cid))
        )
    # One wave per zone; no zone and an unknown zone go with the workspace's.
    assert dues == {KOLKATA: 2, BERLIN: 4, NEW_YORK: 2, AUCKLAND: 1}

    clock.freeze(KOLKATA - timedelta(seconds=1))
    assert _tick_and_run(enqueued)["waves"] == []
    assert _sent_to(outbox) == Counter()
    clock.freeze(KOLKATA)
    assert _tick_and_run(enqueued)["waves"] == [cid]
    assert set(_sent_to(outbox)) == _zone_emails({"Asia/Kolkata"})
    assert status_of(setup, cid)["status"] == "sending"
    # A lease later nothing is due: recovery re-queues nothing and sends nothing.
    clock.advance(timedelta(seconds=settings.send_lease_seconds + 1))
    result = _tick_and_run(enqueued)
    assert (result["waves"], result["redispatched"]) == ([], 0)
    assert sum(_sent_to(outbox).values()) == 2
    with session_scope() as s:
        progress = waves.campaign_waves(s, setup.actor, cid)
        assert [(w.count, w.sent, w.pending) for w in progress] == [
            (2, 2, 0),
            (4, 0, 4),
            (2, 0, 2),
            (1, 0, 1),
        ]
        assert progress[1].zones == ["Europe/Berlin"]
        summary = waves.waves_summary(progress)
    assert summary == "sending in waves: 1 of 4 sent, next 09:00 CET Europe/Berlin"

    # Paused before Berlin's wave: it is held, and goes on resume.
    with session_scope() as s:
        campaigns.pause(s, setup.actor, cid)
        (row,) = campaigns.list_campaigns(s, setup.actor)
        assert row.waves == "paused in waves: 1 of 4 sent, next 09:00 CET Europe/Berlin"
    clock.freeze(BERLIN + timedelta(minutes=5))
    assert _tick_and_run(enqueued)["waves"] == []
    assert sum(_sent_to(outbox).values()) == 2
    with session_scope() as s:
        campaigns.resume(s, setup.actor, cid)
    run_tasks(enqueued)
    assert set(_sent_to(outbox)) == _zone_emails(
        {"Asia/Kolkata", "Europe/Berlin", None, "Mars/Olympus_Mons"}
    )
    assert status_of(setup, cid)["status"] == "sending"

    clock.freeze(NEW_YORK)
    assert _tick_and_run(enqueued)["waves"] == [cid]
    assert status_of(setup, cid)["status"] == "sending"  # Auckland's wave is still to come
    clock.freeze(AUCKLAND)
    assert _tick_and_run(enqueued)["waves"] == [cid]
    sent = _sent_to(outbox)
    assert set(sent) == _zone_emails(set(ZONES)) and set(sent.values()) == {1}
    status = status_of(setup, cid)
    assert (status["status"], status["sent"], status["queued"]) == ("sent", 9, 0)
    with session_scope() as s:
        assert campaigns.list_campaigns(s, setup.actor)[0].waves == "sent in 4 waves"
    with session_scope() as s:
        rows = s.execute(
            select(Message.attempts, Message.sent_at, Message.due_at).where(
                Message.campaign_id == cid
            )
        ).all()
    # Each row claimed once (the outbox overwrites, so its files alone would hide a twin),
    # and none before its wave.
    assert [attempts for attempts, _, _ in rows] == [1] * 9
    assert all(clock.as_utc(at) >= clock.as_utc(due) for _, at, due in rows)


def test_a_campaign_sent_now_in_waves_and_cancelled_stops_the_waves_to_come(
    live_db, enqueued, outbox
):
    setup, cid = _sent_now_in_waves(enqueued)
    clock.freeze(KOLKATA)
    _tick_and_run(enqueued)
    with session_scope() as s:
        campaigns.cancel(s, setup.actor, cid)
    clock.freeze(AUCKLAND)
    _tick_and_run(enqueued)
    assert set(_sent_to(outbox)) == _zone_emails({"Asia/Kolkata"})
    status = status_of(setup, cid)
    assert (status["status"], status["sent"], status["cancelled"]) == ("cancelled", 2, 7)


def test_wave_times_across_clock_changes_and_bad_times():
    # Spring forward in Berlin (2027-03-28, 02:00 -> 03:00): 02:30 does not exist and goes
    # at 03:30 CEST, the same instant as 02:30 on the old offset.
    start = datetime(2027, 3, 28, 0, 0, tzinfo=UTC)
    assert waves.wave_time(start, "02:30", "Europe/Berlin") == datetime(
        2027, 3, 28, 1, 30, tzinfo=UTC
    )
    # Fall back (2026-10-25, 03:00 -> 02:00): 02:30 happens twice; the first one is taken.
    start = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)
    assert waves.wave_time(start, "02:30", "Europe/Berlin") == datetime(
        2026, 10, 25, 0, 30, tzinfo=UTC
    )
    # At the start itself the wave is due at once; a minute later it waits a day.
    at_nine = datetime(2026, 12, 7, 3, 30, tzinfo=UTC)
    assert waves.wave_time(at_nine, "09:00", "Asia/Kolkata") == at_nine
    assert waves.wave_time(
        at_nine + timedelta(minutes=1), "09:00", "Asia/Kolkata"
    ) == at_nine + timedelta(days=1)
    for bad in ("25:00", "9", "nine", ""):
        with pytest.raises(ValidationFailed, match="time of day"):
            waves.parse_local_time(bad)


def test_a_campaign_without_a_local_time_has_no_waves(live_db, enqueued):
    setup, cid = _zoned_setup()
    with session_scope() as s:
        campaigns.send_now(s, setup.actor, cid)
    run_tasks(enqueued)
    with session_scope() as s:
        assert s.get(Campaign, cid).local_send_time is None
        assert waves.campaign_waves(s, setup.actor, cid) == []
        assert s.scalar(select(Message.due_at).where(Message.campaign_id == cid).limit(1)) is None
    assert status_of(setup, cid)["status"] == "sent"


def test_an_ab_test_is_not_sent_in_waves(session):
    from core.models import Variant

    setup = make_setup(session, contacts=2)
    cid = make_campaign(session, setup)
    campaign = session.get(Campaign, cid)
    campaign.variants.append(Variant(label="B", subject="Other", template_id=setup.template_id))
    session.flush()
    with pytest.raises(ValidationFailed, match="A/B test cannot be sent in time-zone waves"):
        campaigns.send_now(session, setup.actor, cid, local_time="09:00")
    assert campaign.status == "draft" and campaign.local_send_time is None


def test_a_worker_lost_mid_wave_resends_that_wave_only_once(live_db, enqueued, outbox):
    """Kolkata's wave was claimed by a worker that died: one lease later recovery gives its
    rows back and they go once; the later waves stay where they are."""
    from sqlalchemy import update

    setup, cid = _sent_now_in_waves(enqueued)
    clock.freeze(KOLKATA)
    assert waves_tick()["waves"] == [cid]
    enqueued.clear()  # the wave's batch task died with its worker, after claiming the rows
    with session_scope() as s:
        s.execute(
            update(Message)
            .where(Message.campaign_id == cid, Message.due_at == KOLKATA)
            .values(status="sending", updated_at=clock.now())
        )
    clock.advance(timedelta(seconds=settings.send_lease_seconds + 1))
    result = _tick_and_run(enqueued)
    assert (result["reclaimed"], result["redispatched"], result["waves"]) == (2, 1, [])
    sent = _sent_to(outbox)
    assert set(sent) == _zone_emails({"Asia/Kolkata"}) and set(sent.values()) == {1}
    with session_scope() as s:
        waiting = s.scalars(
            select(Message.status).where(Message.campaign_id == cid, Message.due_at > KOLKATA)
        ).all()
    assert set(waiting) == {"queued"} and len(waiting) == 7
    with session_scope() as s:  # sent again once after the loss (the lost claim: not counted)
        attempts = s.scalars(
            select(Message.attempts).where(Message.campaign_id == cid, Message.due_at == KOLKATA)
        ).all()
    assert attempts == [1, 1]
    assert status_of(setup, cid)["status"] == "sending"
