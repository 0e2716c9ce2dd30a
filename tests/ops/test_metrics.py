"""Metrics (core.infra.metrics): counted where things happen, read on /metrics and on a
worker's METRICS_PORT, never with an address in them."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from core.infra.config import settings
from core.infra.db import session_scope
from tests.processes import BIN, Proc, free_port, process_env, wait_until
from tests.sending.test_pipeline import run_tasks, start
from webhook.main import app


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_sends_are_counted_per_transport_and_outcome(live_db, enqueued, outbox):
    before = _value("mailwright_messages_total", transport="outbox", outcome="sent")
    start(live_db, contacts=5)
    run_tasks(enqueued)
    after = _value("mailwright_messages_total", transport="outbox", outcome="sent")
    assert after - before == 5


def test_the_public_service_serves_its_metrics(live_db, monkeypatch):
    client = TestClient(app)
    forged_before = _value("mailwright_sns_notifications_total", outcome="malformed")
    opens_before = _value("mailwright_tracking_hits_total", kind="open")
    client.post("/sns/ses", content=b"not json", headers={"x-amz-sns-message-type": "x"})
    client.get("/t/o/not-a-token.gif")  # refused: not counted as a hit
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    assert samples[("mailwright_sns_notifications_total", (("outcome", "malformed"),))] == (
        forged_before + 1
    )
    assert _value("mailwright_tracking_hits_total", kind="open") == opens_before
    # Read when scraped: every queue's depth (the test broker is empty), the inbox.
    for queue in ("sending", "events", "imports", "maintenance", "celery"):
        assert samples[("mailwright_queue_depth", (("queue", queue),))] == 0
    assert samples[("mailwright_sns_inbox_backlog", ())] == 0
    assert "@" not in response.text
    # With METRICS_TOKEN, only a scraper that has it.
    monkeypatch.setattr(settings, "metrics_token", "s3cret-token")
    assert client.get("/metrics").status_code == 401
    ok = client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200


def test_the_inbox_backlog_and_its_age(live_db):
    import json
    import uuid

    from core.ingest import inbox

    with session_scope() as s:
        item = inbox.SnsItem(str(uuid.uuid4()), "Notification", "arn:t", json.dumps({}))
        inbox.accept_sns_notifications(s, [item])
    samples = _samples(TestClient(app).get("/metrics").text)
    assert samples[("mailwright_sns_inbox_backlog", ())] == 1
    assert samples[("mailwright_sns_inbox_oldest_seconds", ())] >= 0


@pytest.mark.slow
def test_a_worker_serves_its_pool_s_counts_on_metrics_port(live_db, enqueued, tmp_path: Path):
    """python -m worker with METRICS_PORT: the mails a pool process sent, counted in the
    multiprocess folder, are served by the worker's main process."""
    port = free_port()
    env = process_env(tmp_path, live_db, METRICS_PORT=str(port))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    worker = Proc(
        [str(BIN / "python"), "-m", "worker", "--without-gossip", "--without-mingle"],
        env,
        tmp_path / "worker.log",
        graceful=False,
    )
    try:
        wait_until(lambda: "ready." in worker.log(), 90, "worker")
        setup, cid, _ = start(live_db, contacts=4)
        from celery import Celery

        from core.infra.jobs import celery_config

        client = Celery("probe")
        client.conf.update({**celery_config(), "broker_url": env["BROKER_URL"]})
        client.send_task("worker.tasks_sending.start_campaign", args=[cid])

        def sent() -> float:
            url = f"http://127.0.0.1:{port}/metrics"
            with urllib.request.urlopen(url, timeout=5) as response:
                text = response.read().decode()
            key = ("mailwright_messages_total", (("outcome", "sent"), ("transport", "outbox")))
            return _samples(text).get(key, 0.0)

        wait_until(lambda: sent() == 4, 60, "4 mails counted on the worker's METRICS_PORT")
    finally:
        worker.stop()
    assert (tmp_path / "metrics" / "worker").is_dir()  # the multiprocess folder it made
