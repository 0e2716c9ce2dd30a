"""Through a real Celery worker process: the rest goes out exactly once despite a SIGKILL."""

from __future__ import annotations

from collections import Counter

import kombu.transport.sqlalchemy as kombu_sqla
import pytest
from celery import Celery
from sqlalchemy import func, select

from core import abtest, campaigns
from core.db import session_scope
from core.models import Campaign, Message
from tests.helpers import outbox_messages
from tests.processes import process_env, start_worker, wait_until
from tests.sending.builders import make_campaign, make_setup

pytestmark = pytest.mark.slow


def _statuses(cid: int) -> Counter:
    with session_scope() as s:
        rows = s.execute(
            select(Message.status, func.count())
            .where(Message.campaign_id == cid)
            .group_by(Message.status)
        )
        return Counter(dict(rows.all()))


@pytest.mark.parametrize("backend", ["sqlite"])
def test_kill_the_worker_while_the_rest_is_sent(live_db, tmp_path):
    contacts = 600
    with session_scope() as s:
        setup = make_setup(s, contacts=contacts, rate=100.0)
        cid = make_campaign(s, setup)
        variants = [
            {"subject": f"{label} news for {{{{ first_name }}}}", "template_id": setup.template_id}
            for label in "AB"
        ]
        abtest.configure_ab_test(
            s, setup.actor, cid, {"variants": variants, "test_share": 20, "seed": 7}
        )
        campaigns.send_now(s, setup.actor, cid)

    broker = f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    env = process_env(
        tmp_path,
        live_db,
        SEND_LEASE_SECONDS="3",
        SEND_TICK_SECONDS="1",
        SEND_BATCH_SIZE="40",
    )
    worker = start_worker(env, tmp_path / "w1.log", concurrency=2, beat=True)
    try:
        wait_until(lambda: _statuses(cid) == Counter(sent=120, held=480), 90, "the test sent")
        with session_scope() as s:
            winner = s.get(Campaign, cid).variants[1]
            abtest.choose_winner_manually(s, setup.actor, cid, winner.id)
        # What the pick enqueues once committed (tests record enqueues instead of sending).
        kombu_sqla.Transport.polling_interval = 0.1
        Celery("test-client", broker=broker).send_task(abtest.RELEASE_TASK, args=[cid])
        wait_until(lambda: _statuses(cid)["sent"] >= 220, 90, "part of the rest sent")
        worker.kill()  # SIGKILL to the whole group
        worker.popen.wait(10)
    finally:
        worker.stop()
    at_kill = _statuses(cid)
    assert 220 <= at_kill["sent"] < contacts and at_kill["held"] == 0, at_kill

    worker = start_worker(env, tmp_path / "w2.log", concurrency=2, beat=True)
    try:
        wait_until(
            lambda: _statuses(cid) == Counter(sent=contacts), 120, f"campaign sent {at_kill}"
        )
    finally:
        worker.stop()
    sent = outbox_messages(tmp_path / "outbox")
    assert Counter(m["To"] for m in sent) == Counter(
        {f"r{i}@example.com": 1 for i in range(contacts)}
    )
    assert Counter(m["Subject"][0] for m in sent) == Counter(A=60, B=540)
    with session_scope() as s:
        assert s.get(Campaign, cid).status == "sent"
