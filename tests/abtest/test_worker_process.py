"""A real Celery worker process runs the A/B beat task against the shared database."""

from __future__ import annotations

from datetime import timedelta

import kombu.transport.sqlalchemy as kombu_sqla
import pytest
from celery import Celery

from core.infra import clock
from core.infra.db import session_scope
from core.models import Campaign
from tests.abtest.builders import committed_test, rest_states
from tests.processes import process_env, start_worker
from worker.celery_app import app as worker_app

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("backend", ["sqlite"])
def test_worker_evaluates_a_due_test(live_db, tmp_path):
    task = "worker.tasks_abtest.evaluate_ab_tests"
    assert worker_app.conf.beat_schedule["evaluate-ab-tests"]["task"] == task
    # Not significant (22 vs 20 clicks of 200): decided, nothing released.
    campaign_id = committed_test(winner_clicks=22, loser_clicks=20)
    with session_scope() as session:
        # The test started five hours ago by the real clock the worker reads.
        session.get(Campaign, campaign_id).started_at = clock.now() - timedelta(hours=5)

    broker = f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    backend = f"db+sqlite:///{tmp_path / 'results.db'}"
    env = process_env(tmp_path, live_db, BROKER_URL=broker, RESULT_BACKEND=backend)
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        kombu_sqla.Transport.polling_interval = 0.1
        client = Celery("test-client", broker=broker, backend=backend)
        # The task stores no result (nobody reads it): with one worker process, the ping
        # queued behind it answers once it has run.
        client.send_task(task)
        assert client.send_task("worker.tasks.ping").get(timeout=90) == "pong"
        with session_scope() as session:
            first = session.get(Campaign, campaign_id).ab_decision
        assert first["outcome"] == "not_significant"
        client.send_task(task)  # a second round finds nothing due and changes nothing
        assert client.send_task("worker.tasks.ping").get(timeout=90) == "pong"
    finally:
        worker.stop()
    with session_scope() as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign.ab_decision == first
        assert campaign.ab_winner_variant_id is None
    assert rest_states(campaign_id)[0][0] == "held"
