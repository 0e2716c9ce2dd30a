"""Logs (core.infra.logs): JSON lines with the ids of the work, and no email addresses."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from core.infra import logs
from core.infra.config import settings


@pytest.fixture
def json_lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """What the root logger writes, as JSON lines (LOG_FORMAT=json)."""
    monkeypatch.setattr(settings, "log_format", "json")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logs.adopt_handler(handler)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_carries_the_ids_bound_where_the_work_is_known(json_lines):
    log = logging.getLogger("core.sending.pipeline")
    with logs.bound(campaign_id=7, task_id="t-1"):
        log.info("outbox: sent %d", 3, extra={"message_id": 42})
        with logs.bound(campaign_id=8):
            log.warning("throttled")
        log.info("after")
    log.info("outside")
    first, second, third, fourth = _lines(json_lines)
    assert first["message"] == "outbox: sent 3"
    assert first["level"] == "INFO" and first["logger"] == "core.sending.pipeline"
    assert (first["campaign_id"], first["message_id"], first["task_id"]) == (7, 42, "t-1")
    assert first["time"].endswith("+00:00")
    assert second["campaign_id"] == 8 and second["level"] == "WARNING"
    assert third["campaign_id"] == 7 and "message_id" not in third
    assert not {"campaign_id", "message_id", "task_id", "request_id"} & set(fourth)


def test_an_exception_is_part_of_its_line(json_lines):
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("x").exception("failed")
    (line,) = _lines(json_lines)
    assert line["level"] == "ERROR" and "ValueError: boom" in line["exception"]


def test_email_addresses_never_reach_an_info_line(json_lines, monkeypatch):
    log = logging.getLogger("core.forms")
    log.info("welcome mail to %s", "Ann.O'Neil+news@example.co.uk")
    log.info("Task x succeeded: %r", {"to": "bob@example.com"})
    log.info("Connected to redis://:**@127.0.0.1:6379/0")
    info, task, url = (line["message"] for line in _lines(json_lines))
    assert info == "welcome mail to <email>"
    assert "bob@" not in task and "<email>" in task
    assert url == "Connected to redis://:**@127.0.0.1:6379/0"
    # Plain text (the default) is redacted as well.
    monkeypatch.setattr(settings, "log_format", "text")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logs.adopt_handler(handler)
    log.addHandler(handler)
    try:
        log.info("confirmation for %s", "carol@example.org")
    finally:
        log.removeHandler(handler)
    assert "carol" not in stream.getvalue() and "<email>" in stream.getvalue()


def test_the_public_service_gives_each_request_an_id_its_lines_carry(
    live_db, json_lines, monkeypatch
):
    from core.infra import health
    from webhook.main import app

    def broker_down() -> None:
        raise ConnectionRefusedError("redis.internal:6379 refused")

    monkeypatch.setitem(health.CHECKS, "broker", broker_down)
    client = TestClient(app)
    response = client.get("/readyz", headers={"X-Request-ID": "lb-abc.123"})
    assert response.status_code == 503
    assert response.headers["x-request-id"] == "lb-abc.123"
    # The check ran in the threadpool; its warning names the request all the same.
    (line,) = [x for x in _lines(json_lines) if x["logger"] == "webhook"]
    assert line["request_id"] == "lb-abc.123" and line["level"] == "ERROR"
    assert "refused" in line["exception"]  # the detail is in the log, not in the answer
    assert "redis.internal" not in response.text
    # Without an id, or with one that is not a sane token, the service makes one up.
    response = client.get("/healthz", headers={"X-Request-ID": "<script>"})
    assert len(response.headers["x-request-id"]) == 16
    assert response.headers["x-request-id"] != client.get("/healthz").headers["x-request-id"]
    # Nothing outlives its request.
    assert logs.current_ids() == {}
