"""Queues (core.infra.jobs.TASK_QUEUES): sending, events, imports and maintenance apart, so
a worker given only `events` drains the SNS inbox while a long send holds another worker."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import func, select

from core.campaigns import service as campaigns
from core.infra.db import session_scope
from core.infra.jobs import QUEUES, TASK_QUEUES, celery_config, consumed_queues, queue_of
from core.ingest import inbox
from core.models import Event, Message
from tests.processes import PROCESS_BACKEND, process_env, start_worker, wait_until
from tests.sending.builders import make_campaign, make_setup
from tests.webhook.snsutil import TOPIC, ses_event
from worker.celery_app import app


def test_every_route_names_a_task_and_a_queue():
    app.loader.import_default_modules()  # the include= modules, as a worker does
    tasks = {name for name in app.tasks if name.startswith("worker.")}
    assert set(TASK_QUEUES) <= tasks
    assert set(TASK_QUEUES.values()) <= set(QUEUES)
    assert queue_of("worker.tasks_sending.send_batch") == "sending"
    assert queue_of("worker.tasks.make_sns_events") == "events"
    assert queue_of("worker.tasks_contacts.import_contacts") == "imports"
    assert queue_of("worker.tasks_analytics.build_rollups") == "maintenance"
    assert queue_of("worker.tasks.ping") == "celery"
    # The client that core.infra.jobs sends with routes the same way.
    routes = celery_config()["task_routes"]
    assert routes["worker.tasks.make_sns_events"] == {"queue": "events"}


def test_worker_queues_setting():
    assert consumed_queues("") == list(QUEUES)
    assert consumed_queues(" events , sending") == ["events", "sending"]
    with pytest.raises(ValueError, match="unknown queues: evnts"):
        consumed_queues("evnts")


def _client(env: dict[str, str]) -> Celery:
    client = Celery("test-client")
    client.conf.update(
        {
            **celery_config(),
            "broker_url": env["BROKER_URL"],
            "result_backend": env["RESULT_BACKEND"],
        }
    )
    return client


def _sent(cid: int) -> list[tuple[int, str, str]]:
    with session_scope() as s:
        rows = s.execute(
            select(Message.id, Message.email, Message.provider_message_id).where(
                Message.campaign_id == cid, Message.status == "sent"
            )
        )
        return [tuple(r) for r in rows]


def _pending(cid: int) -> int:
    with session_scope() as s:
        return (
            s.scalar(
                select(func.count()).where(
                    Message.campaign_id == cid, Message.status.in_(["queued", "sending"])
                )
            )
            or 0
        )


def _json_lines(path: Path) -> list[dict]:
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


# A process boundary: one backend (PostgreSQL when TEST_DATABASE_URL is set); the SQL
# behind it runs on both in this package's in-process tests.
@pytest.mark.parametrize("backend", [PROCESS_BACKEND])
@pytest.mark.slow
def test_an_events_worker_drains_the_inbox_while_a_long_send_holds_the_sending_worker(
    live_db, tmp_path
):
    # 60 mails at 2 a second: one send task busy for half a minute.
    with session_scope() as s:
        setup = make_setup(s, contacts=60, rate=2.0)
        cid = make_campaign(s, setup)
        campaigns.send_now(s, setup.actor, cid)
    env = process_env(tmp_path, live_db, LOG_FORMAT="json")
    sender = start_worker({**env, "WORKER_QUEUES": "sending"}, tmp_path / "sending.log", name="s")
    events = start_worker({**env, "WORKER_QUEUES": "events"}, tmp_path / "events.log", name="e")
    try:
        client = _client(env)
        client.send_task("worker.tasks_sending.start_campaign", args=[cid])
        wait_until(lambda: len(_sent(cid)) >= 2, 60, "the first mails sent")
        message_id, address, provider_id = _sent(cid)[0]
        delivery = ses_event("Delivery", provider_id, [address])
        with session_scope() as s:
            item = inbox.SnsItem(str(uuid.uuid4()), "Notification", TOPIC, json.dumps(delivery))
            assert inbox.accept_sns_notifications(s, [item]) == ["stored"]
        client.send_task("worker.tasks.make_sns_events")

        def delivered() -> bool:
            with session_scope() as s:
                return bool(
                    s.scalar(
                        select(func.count()).where(
                            Event.message_id == message_id, Event.type == "delivered"
                        )
                    )
                )

        wait_until(delivered, 30, "the delivery event")
        # The send was still going when the event was made: it did not wait for it.
        assert _pending(cid) > 0
    finally:
        sender.stop()
        events.stop()
    sending_log, events_log = sender.log(), events.log()
    # (The drain itself is not logged at INFO: worker/quiet.py. The sending worker has one
    # process, busy in send_batch all along, so the events worker made the event.)
    assert "Task worker.tasks_sending.send_batch" in sending_log
    assert "Task worker.tasks_sending" not in events_log
    # JSON logs: the pipeline's lines name the campaign, and the task they ran in.
    chunks = [
        line
        for line in _json_lines(tmp_path / "sending.log")
        if line["logger"] == "core.sending.pipeline" and "outbox: sent" in line["message"]
    ]
    assert chunks, sending_log[-2000:]
    assert all(line["campaign_id"] == cid and line["task_id"] for line in chunks)
    assert not any(
        "@example.com" in line["message"] for line in _json_lines(tmp_path / "sending.log")
    )
