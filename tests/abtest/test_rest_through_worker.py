"""An A/B campaign through a real Celery worker with beat: the test share goes out, the
marketer picks a winner, and the held rest is sent exactly once although the worker is
killed (SIGKILL) half-way through it."""

from __future__ import annotations

from collections import Counter
from email.header import decode_header, make_header
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core import abtest
from core.campaigns import service as campaigns
from core.infra.db import session_scope
from core.models import Message, Template
from tests.helpers import outbox_messages
from tests.processes import PROCESS_BACKEND, process_env, start_worker, wait_until
from tests.sending.builders import HTML, make_campaign, make_setup

pytestmark = pytest.mark.slow

CONTACTS = 400


def _statuses(cid: int) -> Counter:
    with session_scope() as s:
        rows = s.execute(
            select(Message.status, func.count())
            .where(Message.campaign_id == cid)
            .group_by(Message.status)
        )
        return Counter(dict(rows.all()))


def _campaign_status(setup, cid: int) -> str:
    with session_scope() as s:
        return campaigns.campaign_status(s, setup.actor, cid)["status"]


# The release runs on both backends in test_release_and_task.py; exactly once through a
# killed worker on SQLite is sending/test_worker.py's kill test.
@pytest.mark.parametrize("backend", [PROCESS_BACKEND])
def test_rest_goes_to_the_winner_once_with_the_worker_killed(live_db, tmp_path: Path, enqueued):
    with session_scope() as s:
        setup = make_setup(s, contacts=CONTACTS, rate=150.0)
        cid = make_campaign(s, setup)
        other = Template(workspace_id=setup.workspace_id, name="Other", subject="x", html=HTML)
        s.add(other)
        s.flush()
        abtest.configure_ab_test(
            s,
            setup.actor,
            cid,
            {
                "variants": [
                    {"subject": "Subject A", "template_id": setup.template_id},
                    {"subject": "Subject B", "template_id": other.id, "from_name": "Team B"},
                ],
                "test_share": 20,
                "winner_rule": "manual",
                "wait_minutes": 60,
            },
        )
        campaigns.send_now(s, setup.actor, cid)  # beat's tick starts it

    env = process_env(
        tmp_path,
        live_db,
        SEND_LEASE_SECONDS="3",
        SEND_TICK_SECONDS="1",
        SEND_BATCH_SIZE="40",
        AB_TICK_SECONDS="1",
    )
    worker = start_worker(env, tmp_path / "w1.log", concurrency=2, beat=True)
    try:
        # The test share (20% = 80, 40 per variant) goes out; the rest waits for a winner.
        wait_until(lambda: _statuses(cid) == Counter(sent=80, held=320), 90, "test share sent")
        assert _campaign_status(setup, cid) == "sending"
        with session_scope() as s:
            variants = {
                v.label: v.id for v in abtest.settings._campaign(s, setup.actor, cid).variants
            }
            abtest.choose_winner_manually(s, setup.actor, cid, variants["B"])
        # Beat's sweep releases the rest to B; kill the worker while it is being sent.
        wait_until(lambda: _statuses(cid)["sent"] >= 160, 60, "part of the rest sent")
        worker.kill()
        worker.popen.wait(10)
    finally:
        worker.stop()
    at_kill = _statuses(cid)
    assert 160 <= at_kill["sent"] < CONTACTS, at_kill
    assert at_kill["held"] == 0, at_kill

    worker = start_worker(env, tmp_path / "w2.log", concurrency=2, beat=True)
    try:
        wait_until(lambda: _campaign_status(setup, cid) == "sent", 90, "campaign sent")
    finally:
        worker.stop()
    assert _statuses(cid) == Counter(sent=CONTACTS)

    mails = outbox_messages(tmp_path / "outbox")
    assert Counter(m["To"] for m in mails) == Counter(
        {f"r{i}@example.com": 1 for i in range(CONTACTS)}
    )
    subjects = Counter(str(make_header(decode_header(m["Subject"]))) for m in mails)
    assert subjects == Counter({"Subject A": 40, "Subject B": 360})
    senders = Counter(str(make_header(decode_header(m["From"]))) for m in mails)
    assert senders == Counter({"Acme News <news@acme.io>": 40, "Team B <news@acme.io>": 360})
