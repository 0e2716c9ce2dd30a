"""The webhook process answers /healthz when its database does."""

from __future__ import annotations

from fastapi.testclient import TestClient

from webhook.main import app


def test_healthz(live_db):
    response = TestClient(app).get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
