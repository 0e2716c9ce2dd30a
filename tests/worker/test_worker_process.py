"""A real Celery worker process takes tasks from the embedded broker (and Redis)."""

from __future__ import annotations

import os
import socket

import pytest
from celery import Celery

from tests.processes import process_env, start_worker

pytestmark = pytest.mark.slow


def _roundtrip(tmp_path, broker: str, backend: str) -> None:
    env = process_env(
        tmp_path, f"sqlite:///{tmp_path / 'app.db'}", BROKER_URL=broker, RESULT_BACKEND=backend
    )
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        client = Celery("test-client", broker=broker, backend=backend)
        import kombu.transport.sqlalchemy as kombu_sqla

        kombu_sqla.Transport.polling_interval = 0.1
        result = client.send_task("worker.tasks.ping")
        assert result.get(timeout=60) == "pong"
        if broker.startswith("redis"):
            # What a supervisor's health check asks (`celery inspect ping`): the worker
            # answers on the broker's broadcast channel, without running a task.
            replies = client.control.inspect(timeout=5).ping()
            assert replies == {"w1@" + socket.gethostname(): {"ok": "pong"}}
    finally:
        worker.stop()


def test_worker_on_the_embedded_broker(tmp_path):
    _roundtrip(
        tmp_path,
        f"sqla+sqlite:///{tmp_path / 'broker.db'}",
        f"db+sqlite:///{tmp_path / 'results.db'}",
    )


@pytest.mark.redis
def test_worker_on_redis(tmp_path):
    url = os.environ["TEST_REDIS_URL"]
    _roundtrip(tmp_path, url, url)
