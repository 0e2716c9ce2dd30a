"""Metrics (core.infra.metrics): counted where things happen, read on /metrics and on a
worker's METRICS_PORT, never with an address in them."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from core.infra.config import settings
from core.infra.db import session_scope
from tests.abtest.test_lifecycle import running  # noqa: F401 - a fixture
from tests.processes import BIN, Proc, free_port, process_env, wait_until
from tests.sending.test_pipeline import run_tasks, start
from tests.webhook.conftest import fake_sns  # noqa: F401 - a fixture
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


# ---------------------------------------------------------------- the other metrics


def _scrape() -> dict[tuple[str, tuple], float]:
    return _samples(TestClient(app).get("/metrics").text)


def _by_label(samples: dict, name: str, label: str) -> dict[str, float]:
    return {dict(k[1])[label]: v for k, v in samples.items() if k[0] == name}


def test_import_rows_are_counted_per_result(live_db, tmp_path):
    from core.contacts.importing import ImportOptions, run_import_job, start_import_job
    from core.infra.db import get_sessionmaker
    from tests.apptest_db import seed_user
    from tests.contacts.test_cli_and_jobs import _file, _workspace_actor

    def rows(result: str, outcome: str) -> float:
        return _value("mailwright_import_rows_total", outcome=outcome, result=result)

    before = {r: rows(r, o) for r, o in [("created", "ok"), ("invalid", "error")]}
    seed_user()
    actor = _workspace_actor()
    with session_scope() as session:
        job_id = start_import_job(session, actor, _file(tmp_path, 6), ImportOptions(), 7).id
    assert run_import_job(get_sessionmaker(), job_id) == "done"
    assert rows("created", "ok") - before["created"] == 6
    assert rows("invalid", "error") - before["invalid"] == 1
    # A finished job run again (a redelivered task) counts nothing more.
    assert run_import_job(get_sessionmaker(), job_id) == "done"
    assert rows("created", "ok") - before["created"] == 6


def test_ab_decisions_are_counted_per_outcome_once_committed(session, running):  # noqa: F811
    from core import abtest
    from tests.abtest.builders import T0, add_events, messages_of, send_test
    from tests.abtest.test_lifecycle import HOUR

    build = running

    def decided(outcome: str) -> float:
        return _value("mailwright_ab_decisions_total", outcome=outcome)

    before = {o: decided(o) for o in ("winner", "no_difference", "manual")}
    # A clear winner, decided by the statistics.
    _ws, _actor, campaign = build()
    send_test(session, campaign)
    add_events(session, campaign, messages_of(session, campaign, "A")[:15], "click")
    add_events(session, campaign, messages_of(session, campaign, "B")[:40], "click")
    assert abtest.evaluate_ab_test(session, campaign.id, T0 + 5 * HOUR)["winner"] == "B"
    assert decided("winner") == before["winner"]  # not before the commit
    session.commit()
    assert decided("winner") == before["winner"] + 1
    # Asked again: the stored decision, not a new one.
    abtest.evaluate_ab_test(session, campaign.id, T0 + 6 * HOUR)
    session.commit()
    assert decided("winner") == before["winner"] + 1

    # No significant difference, then the marketer's pick; a rolled-back pick is not counted.
    _ws, actor, other = build()
    send_test(session, other)
    add_events(session, other, messages_of(session, other, "A")[:20], "click")
    add_events(session, other, messages_of(session, other, "B")[:21], "click")
    assert abtest.evaluate_ab_test(session, other.id, T0 + 5 * HOUR)["winner"] is None
    session.commit()
    assert decided("no_difference") == before["no_difference"] + 1
    a, _b = other.variants
    abtest.choose_winner_manually(session, actor, other.id, a.id, T0 + 7 * HOUR)
    session.rollback()
    assert decided("manual") == before["manual"]
    abtest.choose_winner_manually(session, actor, other.id, a.id, T0 + 7 * HOUR)
    session.commit()
    assert decided("manual") == before["manual"] + 1
    assert decided("winner") == before["winner"] + 1


def test_a_sending_campaign_s_pending_rows_and_the_workspace_s_rate(
    live_db, enqueued, outbox, monkeypatch
):
    monkeypatch.setattr(settings, "send_batch_size", 2)
    setup, cid, _ = start(live_db, contacts=5, rate=40.0)
    run_tasks(enqueued[:1])  # the start task: the ledger snapshot and 3 batch tasks
    batches = [task for task in enqueued if task[0].endswith("send_batch")]
    assert len(batches) == 3
    enqueued[:] = batches
    ws = str(setup.workspace_id)
    sent_before = _value("mailwright_workspace_sent_total", workspace_id=ws)
    samples = _scrape()
    campaign = (("campaign_id", str(cid)),)
    workspace = (("workspace_id", ws),)
    assert samples[("mailwright_campaign_pending_messages", campaign)] == 5
    assert samples[("mailwright_campaign_sending_age_seconds", campaign)] >= 0
    assert samples[("mailwright_workspace_send_limit_per_minute", workspace)] == 40 * 60

    run_tasks([enqueued.pop(0)])  # one batch: 2 mails
    samples = _scrape()
    assert samples[("mailwright_campaign_pending_messages", campaign)] == 3
    assert _value("mailwright_workspace_sent_total", workspace_id=ws) == sent_before + 2

    run_tasks(enqueued)
    samples = _scrape()
    assert _value("mailwright_workspace_sent_total", workspace_id=ws) == sent_before + 5
    # Finished: its labels are gone (cardinality stays bounded by what is sending).
    for name in ("mailwright_campaign_pending_messages", "mailwright_campaign_sending_age_seconds"):
        assert _by_label(samples, name, "campaign_id") == {}
    assert _by_label(samples, "mailwright_workspace_send_limit_per_minute", "workspace_id") == {}


def test_no_address_in_a_full_scrape_after_a_send_an_import_and_events(
    live_db,
    enqueued,
    outbox,
    tmp_path,
    fake_sns,  # noqa: F811
):
    import json

    from core.contacts.importing import ImportOptions, run_import_job, start_import_job
    from core.infra.db import get_sessionmaker
    from core.ingest.inbox import drain_sns_backlog
    from core.models import Message
    from tests.contacts.test_cli_and_jobs import _file
    from tests.webhook.snsutil import notification, ses_event

    setup, cid, _ = start(live_db, contacts=3)
    run_tasks(enqueued)
    from core.infra.permissions import Actor

    actor = Actor(workspace_id=setup.workspace_id, role="owner")
    with session_scope() as session:
        job_id = start_import_job(session, actor, _file(tmp_path, 3), ImportOptions(), 4).id
    run_import_job(get_sessionmaker(), job_id)
    with session_scope() as session:
        sent = session.execute(
            select(Message.provider_message_id, Message.email).where(Message.campaign_id == cid)
        ).all()
    assert len(sent) == 3 and all(pid for pid, _ in sent)
    bounces_before = _value("mailwright_events_made_total", type="bounce")
    hard_before = _value("mailwright_bounces_made_total", bounce_type="hard")
    client = TestClient(app)
    for i, (provider_id, email) in enumerate(sent):
        kind = "Bounce" if i == 0 else ("Complaint" if i == 1 else "Delivery")
        body = ses_event(kind, provider_id, [email])
        response = client.post(
            "/sns/ses",
            content=json.dumps(notification(body)),
            headers={"x-amz-sns-message-type": "Notification"},
        )
        assert response.status_code == 200
    drain_sns_backlog(get_sessionmaker())
    assert _value("mailwright_events_made_total", type="bounce") == bounces_before + 1
    # ses_event's bounce is Permanent: the kind the guard (and the README's alert) counts.
    assert _value("mailwright_bounces_made_total", bounce_type="hard") == hard_before + 1
    text = client.get("/metrics").text
    assert "mailwright_import_rows_total" in text and "mailwright_messages_total" in text
    assert "@" not in text
