"""Through a real Celery worker process: beat starts the campaign, a SIGKILL loses nobody.

The test process only writes the database; the worker (with beat) does everything else.
"""

from __future__ import annotations

import email
import os
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.campaigns import service as campaigns
from core.infra import clock
from core.infra.db import session_scope
from core.models import Message
from tests.helpers import outbox_messages
from tests.processes import PROCESS_BACKEND, process_env, start_worker, wait_until
from tests.sending.builders import make_campaign, make_setup
from tests.services import moto_ses

pytestmark = pytest.mark.slow


def _env(tmp_path: Path, db: str, **extra: str) -> dict[str, str]:
    return process_env(
        tmp_path,
        db,
        SEND_LEASE_SECONDS="3",
        SEND_TICK_SECONDS="1",
        SEND_BATCH_SIZE="50",
        **extra,
    )


def _create(contacts: int, rate: float, when=None):
    with session_scope() as s:
        setup = make_setup(s, contacts=contacts, rate=rate)
        cid = make_campaign(s, setup)
        if when is None:
            campaigns.send_now(s, setup.actor, cid)  # beat's tick starts it within a second
        else:
            campaigns.schedule(s, setup.actor, cid, when)
    return setup, cid


def _status(setup, cid) -> dict:
    with session_scope() as s:
        return campaigns.campaign_status(s, setup.actor, cid)


def _statuses(cid: int) -> Counter:
    with session_scope() as s:
        rows = s.execute(
            select(Message.status, func.count())
            .where(Message.campaign_id == cid)
            .group_by(Message.status)
        )
        return Counter(dict(rows.all()))


def test_kill_the_worker_mid_campaign_everyone_exactly_once(live_db, tmp_path):
    contacts = 400
    setup, cid = _create(contacts, rate=120.0)
    env = _env(tmp_path, live_db)
    worker = start_worker(env, tmp_path / "w1.log", concurrency=2, beat=True)
    try:
        wait_until(lambda: _statuses(cid)["sent"] >= 100, 60, "a quarter sent")
        worker.kill()  # SIGKILL to the whole group: pool children and beat too
        worker.popen.wait(10)
    finally:
        worker.stop()
    at_kill = _statuses(cid)
    assert 0 < at_kill["sent"] < contacts, at_kill

    worker = start_worker(env, tmp_path / "w2.log", concurrency=2, beat=True)
    try:
        wait_until(lambda: _status(setup, cid)["status"] == "sent", 90, "campaign sent")
    finally:
        worker.stop()
    assert _statuses(cid) == Counter({"sent": contacts})
    outbox = tmp_path / "outbox"
    recipients = Counter(m["To"] for m in outbox_messages(outbox))
    assert recipients == Counter({f"r{i}@example.com": 1 for i in range(contacts)})


# The SES transport, not the database, is under test here (the kill test above runs on both).
@pytest.mark.parametrize("backend", [PROCESS_BACKEND])
def test_ses_through_moto_server_scheduled_by_beat(live_db, tmp_path):
    with moto_ses(tmp_path) as ses:
        ses.verify("acme.io")
        when = clock.now() + timedelta(seconds=3)
        setup, cid = _create(12, rate=50.0, when=when)
        assert _status(setup, cid)["status"] == "scheduled"
        env = _env(tmp_path, live_db, EMAIL_TRANSPORT="ses", **ses.env)
        worker = start_worker(env, tmp_path / "w.log", concurrency=2, beat=True)
        try:
            wait_until(lambda: _status(setup, cid)["status"] == "sent", 60, "campaign sent")
        finally:
            worker.stop()
        sent = ses.raw_messages()
    with session_scope() as s:
        ledger = s.execute(
            select(Message.email, Message.provider_message_id, Message.sent_at).where(
                Message.campaign_id == cid
            )
        ).all()
    assert all(clock.as_utc(r.sent_at) >= when for r in ledger)
    assert len(sent) == 12
    by_to = {}
    for item in sent:
        msg = email.message_from_string(item["raw_data"])
        by_to[msg["To"]] = msg
    assert sorted(by_to) == sorted(f"r{i}@example.com" for i in range(12))
    for msg in by_to.values():
        assert msg["List-Unsubscribe"].startswith("<http://track.example.com/u/")
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # The ledger keeps SES's MessageId for the webhook to match notifications.
    assert all(
        r.provider_message_id and not r.provider_message_id.startswith("outbox") for r in ledger
    )


# Redis as broker and limiter is under test here; the database path is the kill test's.
@pytest.mark.redis
@pytest.mark.parametrize("backend", [PROCESS_BACKEND])
def test_pipeline_on_the_redis_broker_and_rate_limiter(live_db, tmp_path):
    url = os.environ["TEST_REDIS_URL"]
    setup, cid = _create(60, rate=40.0)
    env = _env(
        tmp_path,
        live_db,
        BROKER_URL=url,
        RESULT_BACKEND=url,
        RATE_LIMIT_BACKEND="redis",
        REDIS_URL=url,
    )
    worker = start_worker(env, tmp_path / "w.log", concurrency=2, beat=True)
    try:
        started = time.monotonic()
        wait_until(lambda: _status(setup, cid)["status"] == "sent", 60, "campaign sent")
        elapsed = time.monotonic() - started
    finally:
        worker.stop()
    assert len(outbox_messages(tmp_path / "outbox")) == 60
    assert elapsed >= 60 / 40 - 0.2  # the limiter held it to about 40/s
