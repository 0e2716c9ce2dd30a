"""`make run-prod` (python -m core run-prod): refuses laptop settings; on PostgreSQL and
Redis it migrates and starts Streamlit, the public service, the workers and one beat."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy.engine import make_url

from tests.conftest import _pg_admin, _pg_url
from tests.processes import ROOT, free_port, http_ok, process_env, wait_until


def _refusal(capsys, *args: str) -> tuple[int, str]:
    from core.__main__ import main

    status = main(["run-prod", *args])
    return status, capsys.readouterr().err


def test_refuses_sqlite_and_the_embedded_broker(capsys):
    # The test settings are the laptop defaults: SQLite and the SQLite broker.
    status, err = _refusal(capsys)
    assert status == 2
    assert "DATABASE_URL is SQLite" in err
    assert "BROKER_URL is the embedded broker" in err
    assert "RESULT_BACKEND is a SQLite file" in err
    assert "refusing to start production mode" in err


def test_refuses_the_embedded_broker_alone(capsys, monkeypatch):
    from core.infra.config import settings

    monkeypatch.setattr(settings, "database_url", "postgresql+psycopg://mw@db.internal/mw")
    monkeypatch.setattr(settings, "result_backend", "redis://redis.internal:6379/1")
    status, err = _refusal(capsys, "--check")
    assert status == 2
    assert "DATABASE_URL" not in err and "RESULT_BACKEND" not in err
    assert "BROKER_URL is the embedded broker (sqla+sqlite)" in err
    monkeypatch.setattr(settings, "broker_url", "redis://redis.internal:6379/0")
    assert _refusal(capsys, "--check") == (0, "")


def test_the_events_worker_and_the_queues_of_the_others(monkeypatch):
    from core.cli import ops
    from core.infra.config import settings

    monkeypatch.setattr(settings, "database_url", "postgresql+psycopg://mw@db.internal/mw")
    monkeypatch.setattr(settings, "broker_url", "redis://redis.internal:6379/0")
    monkeypatch.setattr(settings, "result_backend", "redis://redis.internal:6379/1")
    assert ops.worker_queues() == "sending,imports,maintenance,celery"
    assert "events=1," in ops.honcho_argv()[-1]
    assert ops.production_problems() == []
    monkeypatch.setattr(settings, "events_workers", 0)
    assert ops.worker_queues() == "sending,events,imports,maintenance,celery"
    assert "events=0," in ops.honcho_argv()[-1]
    # Named queues are the operator's choice, but every queue needs a worker.
    monkeypatch.setattr(settings, "worker_queues", "sending,imports")
    assert ops.worker_queues() == "sending,imports"
    assert ops.production_problems() == [
        "No worker would consume events, maintenance, celery: add them to WORKER_QUEUES "
        "(or leave it empty)."
    ]
    monkeypatch.setattr(settings, "worker_queues", "sendng")
    assert ops.production_problems() == ["WORKER_QUEUES names unknown queues: sendng."]


def _redis_url(db: int) -> str:
    """TEST_REDIS_URL with its own database number (the other Redis tests use theirs)."""
    return str(make_url(os.environ["TEST_REDIS_URL"]).set(database=str(db)))


def _processes(marker: str) -> dict[int, str]:
    """pid -> command line of every process started with MW_RUN_PROD_TEST=marker: honcho
    and all it started (each of those in a session of its own), with their children."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if f"MW_RUN_PROD_TEST={marker}".encode() in environ.split(b"\0"):
            found[int(proc.name)] = cmdline
    return found


def _json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_every_process_is_healthy_and_stops_with_its_group(tmp_path):
    name = f"mw_prod_{uuid.uuid4().hex[:8]}"
    _pg_admin(f'CREATE DATABASE "{name}"')  # empty: run-prod migrates it
    broker = _redis_url(14)
    app_port, public_port, metrics_port = free_port(), free_port(), free_port()
    env = process_env(
        tmp_path,
        _pg_url(name),
        ENVIRONMENT="production",
        BROKER_URL=broker,
        RESULT_BACKEND=broker,
        APP_PORT=str(app_port),
        PUBLIC_PORT=str(public_port),
        WEB_CONCURRENCY="2",
        WORKER_PROCESSES="2",
        WORKER_CONCURRENCY="1",
        LOG_FORMAT="json",
        METRICS_PORT=str(metrics_port),
        SNS_DRAIN_SECONDS="1",
        MW_RUN_PROD_TEST=uuid.uuid4().hex,
    )
    marker = env["MW_RUN_PROD_TEST"]
    log_path = tmp_path / "run-prod.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    popen = subprocess.Popen(
        [sys.executable, "-m", "core", "run-prod"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    client = Celery("probe", broker=broker, backend=broker)
    try:
        public = f"http://127.0.0.1:{public_port}"
        wait_until(lambda: http_ok(f"http://127.0.0.1:{app_port}/_stcore/health"), 180, "app")
        wait_until(lambda: _json(f"{public}/readyz")[0] == 200, 120, "public service ready")
        assert _json(f"{public}/readyz")[1] == {
            "database": "ok",
            "broker": "ok",
            "migrations": "ok",
            "status": "ok",
        }
        assert _json(f"{public}/healthz") == (200, {"status": "ok"})

        def pongs() -> dict:
            return client.control.inspect(timeout=2).ping() or {}

        wait_until(lambda: len(pongs()) == 3, 120, "three workers answering inspect ping")
        assert all(reply == {"ok": "pong"} for reply in pongs().values())
        # Two take everything but the SNS inbox drain; one (EVENTS_WORKERS) takes only that.
        queues = client.control.inspect(timeout=5).active_queues() or {}
        consumed = sorted(sorted(q["name"] for q in qs) for qs in queues.values())
        rest = sorted(["sending", "imports", "maintenance", "celery"])
        assert consumed == sorted([["events"], rest, rest]), consumed

        # Beat runs: the workers have made the SNS drain it schedules every second.
        def drained() -> int:
            stats = client.control.inspect(timeout=2).stats() or {}
            return sum(s["total"].get("worker.tasks.make_sns_events", 0) for s in stats.values())

        wait_until(lambda: drained() >= 2, 60, "beat's tasks done by the workers")
        beats = [c for c in _processes(marker).values() if "-m worker beat" in c]
        assert len(beats) == 1, _processes(marker)
        assert popen.poll() is None
        # Metrics: the public service's (its workers together) and one worker's port.
        for url in (f"{public}/metrics", f"http://127.0.0.1:{metrics_port}/metrics"):
            with urllib.request.urlopen(url, timeout=10) as response:
                text = response.read().decode()
            assert "mailwright_" in text, url
        with urllib.request.urlopen(f"{public}/metrics", timeout=10) as response:
            text = response.read().decode()
        assert 'mailwright_queue_depth{queue="events"}' in text
        assert "mailwright_sns_inbox_backlog 0.0" in text
        # The processes write JSON lines (after honcho's "time name.1 | " prefix).
        payloads = [
            line.split(" | ", 1)[1]
            for line in log_path.read_text(errors="replace").splitlines()
            if " | {" in line
        ]
        parsed = [json.loads(p) for p in payloads]
        assert {"celery.apps.worker", "uvicorn.error"} <= {p["logger"] for p in parsed}
    finally:
        os.killpg(popen.pid, signal.SIGTERM)  # honcho stops the processes it started
        try:
            popen.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(10)
            raise
        finally:
            log.close()
            client.close()
            deadline = time.monotonic() + 15
            while _processes(marker) and time.monotonic() < deadline:
                time.sleep(0.5)
            left = _processes(marker)
            for pid in left:  # fail below, but leave nothing running
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert left == {}, left
    stopped = [line for line in log_path.read_text().splitlines() if " stopped (rc=" in line]
    assert len(stopped) == 6, stopped  # web, public, 2 workers, the events worker, beat
