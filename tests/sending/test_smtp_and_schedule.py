"""SMTP through a real aiosmtpd server (with a 454 throttle), and scheduling on a moved clock."""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.campaigns import service as campaigns
from core.infra import clock
from core.infra.config import settings
from core.infra.db import get_sessionmaker, session_scope
from core.mail.transports import OutboxTransport
from core.models import Campaign
from core.sending import pipeline as sending
from tests.sending.builders import make_campaign, make_setup
from tests.sending.test_pipeline import Flaky, run_tasks, start, status_of
from tests.services import smtp_sink


def test_smtp_sink_gets_each_recipient_once_through_a_throttle(live_db, enqueued, monkeypatch):
    monkeypatch.setattr(settings, "send_max_backoff", 0.05)
    with smtp_sink() as sink:
        monkeypatch.setattr(settings, "email_transport", "smtp")
        monkeypatch.setattr(settings, "smtp_host", sink.host)
        monkeypatch.setattr(settings, "smtp_port", sink.port)
        sink.fail_next = [(454, "Throttling failure: Maximum sending rate exceeded.")] * 2
        setup, cid, _ = start(live_db, contacts=5)
        run_tasks(enqueued)
        got = sorted(rcpts[0] for _, rcpts, _ in sink.messages)
        raws = [raw for _, _, raw in sink.messages]
    assert got == sorted(f"r{i}@example.com" for i in range(5))
    assert all(frm == "news@acme.io" for frm, _, _ in sink.messages)
    status = status_of(setup, cid)
    assert (status["status"], status["sent"], status["failed"]) == ("sent", 5, 0)
    msg = email.message_from_bytes(raws[0])
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg.is_multipart() and [p.get_content_type() for p in msg.get_payload()] == [
        "text/plain",
        "text/html",
    ]


def test_schedule_in_the_users_time_zone_starts_on_time(live_db, enqueued):
    berlin = ZoneInfo("Europe/Berlin")
    clock.freeze(datetime(2026, 11, 26, 7, 0, tzinfo=UTC))
    with session_scope() as s:
        setup = make_setup(s, contacts=3)
        cid = make_campaign(s, setup)
        with pytest.raises(Exception, match="in the past"):
            campaigns.schedule(s, setup.actor, cid, datetime(2026, 11, 26, 7, 59, tzinfo=berlin))
        campaigns.schedule(s, setup.actor, cid, datetime(2026, 11, 26, 9, 30, tzinfo=berlin))
    with session_scope() as s:
        stored = clock.as_utc(s.get(Campaign, cid).scheduled_at)
    assert stored == datetime(2026, 11, 26, 8, 30, tzinfo=UTC)  # CET is UTC+1 in November

    clock.advance(timedelta(minutes=89))  # 08:29 UTC: not yet
    assert sending.tick(get_sessionmaker())["started"] == []
    clock.advance(timedelta(minutes=1))  # 08:30 UTC: due
    assert sending.tick(get_sessionmaker())["started"] == [cid]
    run_tasks(enqueued)
    status = status_of(setup, cid)
    assert (status["status"], status["sent"]) == ("sent", 3)


def test_recovery_requeues_what_a_lost_worker_held(live_db, enqueued, outbox, monkeypatch):
    """The lease logic itself: stale "sending" rows go back (outbox) or become uncertain."""
    from sqlalchemy import select, update

    from core.models import Message

    setup, cid, _ = start(live_db, contacts=4)
    sending.start_campaign(get_sessionmaker(), cid)
    enqueued.clear()  # the batch tasks died with the worker
    with session_scope() as s:
        ids = s.scalars(select(Message.id).where(Message.campaign_id == cid)).all()
        s.execute(update(Message).where(Message.id.in_(ids[:2])).values(status="sending"))
        s.execute(update(Message).values(updated_at=clock.now()))
    monkeypatch.setattr(settings, "email_transport", "ses")  # not idempotent: uncertain
    assert sending.recover(get_sessionmaker()) == {"reclaimed": 0, "redispatched": 0, "finished": 0}
    clock.advance(timedelta(seconds=settings.send_lease_seconds + 1))
    assert sending.recover(get_sessionmaker()) == {"reclaimed": 2, "redispatched": 1, "finished": 0}
    # Sent again through a transport that cannot be asked (named "ses"): flagged as possible twins.
    run_tasks(enqueued, transport=Flaky(OutboxTransport(outbox)))
    status = status_of(setup, cid)
    assert (status["status"], status["sent"], status["uncertain"]) == ("sent", 4, 2)


def test_a_killed_workers_campaign_resumes_one_lease_after_its_last_write(live_db, enqueued):
    """Rows claimed early in a batch are reclaimed before the worker's last send is a lease
    old; that reclaim must not count as activity, or the re-dispatch waits a second lease."""
    from sqlalchemy import select, update

    from core.models import Message

    lease = timedelta(seconds=settings.send_lease_seconds)
    clock.freeze(clock.now())
    setup, cid, _ = start(live_db, contacts=6)
    sending.start_campaign(get_sessionmaker(), cid)
    enqueued.clear()  # the batch tasks died with the worker
    claimed = clock.now()
    with session_scope() as s:
        ids = s.scalars(select(Message.id).where(Message.campaign_id == cid)).all()
        s.execute(update(Message).values(updated_at=claimed))
        s.execute(update(Message).where(Message.id.in_(ids[:2])).values(status="sending"))
    clock.advance(lease / 2)  # the worker sends two more, then is killed
    killed = clock.now()
    with session_scope() as s:
        s.execute(
            update(Message)
            .where(Message.id.in_(ids[2:4]))
            .values(status="sent", sent_at=killed, updated_at=killed)
        )
    clock.advance(lease / 2 + timedelta(seconds=1))  # the claimed rows are a lease old
    assert sending.recover(get_sessionmaker()) == {"reclaimed": 2, "redispatched": 0, "finished": 0}
    clock.freeze(killed + lease + timedelta(seconds=1))  # one lease after the last write
    assert sending.recover(get_sessionmaker())["redispatched"] == 1
    run_tasks(enqueued)
    status = status_of(setup, cid)
    assert (status["status"], status["sent"]) == ("sent", 6)


def test_a_slow_batch_hands_the_rest_of_its_range_to_a_new_task(live_db, enqueued, monkeypatch):
    """Each task ends inside the worker's time limit: past SEND_BATCH_SECONDS it stops after
    its current chunk and queues the rest; nobody is skipped or sent twice."""
    monkeypatch.setattr(settings, "send_batch_seconds", 0.0)
    setup, cid, _ = start(live_db, contacts=5, rate=50)  # chunks of two messages
    sending.start_campaign(get_sessionmaker(), cid)
    name, args, _ = enqueued[-1]  # the one batch covering the whole range
    enqueued.clear()
    result = sending.send_batch(get_sessionmaker(), *args)
    assert (result.sent, result.stopped) == (2, "continued")
    assert [n for n, _, _ in enqueued] == [name]
    run_tasks(enqueued)
    status = status_of(setup, cid)
    assert (status["status"], status["sent"]) == ("sent", 5)
