"""GET /readyz: database, broker and migrations, each in the threadpool under a timeout."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from sqlalchemy import text

from core.infra import health
from core.infra.config import settings
from core.infra.db import get_engine
from webhook.main import app


def test_ready_when_everything_answers(live_db):
    response = TestClient(app).get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "database": "ok",
        "broker": "ok",
        "migrations": "ok",
        "status": "ok",
    }


def test_not_ready_when_the_migrations_are_behind(live_db):
    with get_engine().begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0016_forms'"))
    response = TestClient(app).get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["database"] == "ok"
    assert body["migrations"].startswith("migrations not at head: database at 0016_forms")


def test_not_ready_when_the_broker_does_not_answer(live_db, monkeypatch):
    monkeypatch.setattr(settings, "broker_url", "redis://127.0.0.1:1/0")
    response = TestClient(app).get("/readyz")
    assert response.status_code == 503
    assert response.json()["broker"] == "unavailable"
    assert response.json()["database"] == "ok"


def test_a_hanging_check_times_out_and_liveness_is_not_a_readiness_check(live_db, monkeypatch):
    def hangs() -> None:
        time.sleep(3)

    monkeypatch.setattr(settings, "ready_timeout_seconds", 0.3)
    monkeypatch.setitem(health.CHECKS, "database", hangs)
    client = TestClient(app)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["database"] == "timed out"
    # /healthz reads nothing: the process is alive while a dependency is down.
    monkeypatch.setattr(settings, "database_url", "postgresql+psycopg://nobody@127.0.0.1:1/x")
    assert client.get("/healthz").json() == {"status": "ok"}
