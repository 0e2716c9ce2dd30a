"""The public webhook under hostile posts (issue 14.3 and the webhook's low items): a slow
certificate host stalls nobody, failures and new URLs are bounded, odd bodies are 4xx."""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy.exc import OperationalError

from core.ingest import sns
from tests.webhook.snsutil import notification
from tests.webhook.test_sns import BODY
from webhook.main import app

HEADERS = {"content-type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification"}


def _run(coroutine):
    """asyncio.run in a thread of its own: the xdist worker's shared Playwright (sync API)
    keeps an event loop running in the main thread, where asyncio.run refuses to start."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def fresh_url(n: int) -> str:
    return f"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-forged{n}.pem"


async def _post(client: httpx.AsyncClient, message: dict | str) -> httpx.Response:
    body = message if isinstance(message, str) else json.dumps(message)
    return await client.post("/sns/ses", content=body, headers=HEADERS)


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://webhook")


def test_forged_posts_with_slow_certificate_urls_do_not_stall_the_event_loop(fake_sns, live_db):
    gate = threading.Event()
    waited_out = []

    def slow_host(url: str) -> bytes:
        fake_sns.visited.append(url)
        # Blocks until the test has had its health check answered. A fetch on the event
        # loop would block that answer too, and this wait would run out instead.
        waited_out.append(not gate.wait(10))
        raise OSError("connection timed out")

    sns.set_http_get(slow_host)

    async def scenario() -> list[int]:
        async with _client() as client:
            forged = [
                asyncio.create_task(_post(client, notification(BODY, cert_url=fresh_url(n))))
                for n in range(3)
            ]
            await asyncio.sleep(0.2)  # the forged posts are waiting on their certificates
            health = await asyncio.wait_for(client.get("/healthz"), 30)
            assert health.status_code == 200
            gate.set()
            return [r.status_code for r in await asyncio.gather(*forged)]

    assert _run(scenario()) == [403, 403, 403]
    assert waited_out and not any(waited_out), "a fetch blocked the loop until it timed out"


def test_a_failed_certificate_url_is_not_fetched_again_and_new_urls_are_capped(fake_sns):
    async def scenario() -> list[int]:
        async with _client() as client:
            first = [(await _post(client, notification(BODY, cert_url=fresh_url(0)))).status_code]
            again = [(await _post(client, notification(BODY, cert_url=fresh_url(0)))).status_code]
            many = [
                (await _post(client, notification(BODY, cert_url=fresh_url(n)))).status_code
                for n in range(1, 1 + sns.NEW_URLS_PER_MINUTE + 5)
            ]
            return first + again + many

    codes = _run(scenario())
    assert codes[:2] == [403, 403]
    assert fake_sns.visited.count(fresh_url(0)) == 1, "a failure is remembered for a while"
    assert len(set(fake_sns.visited)) == sns.NEW_URLS_PER_MINUTE
    assert codes[-5:] == [503] * 5, "past the cap SNS is asked to retry later"


def test_a_deeply_nested_body_and_a_certificate_url_with_a_newline_are_refused(fake_sns):
    async def scenario() -> tuple[int, int]:
        async with _client() as client:
            nested = await _post(client, "[" * 100_000 + "]" * 100_000)
            url = "https://sns.us-east-1.amazonaws.com/x\r\nHost: evil.pem"
            newline = await _post(client, notification(BODY, cert_url=url))
            return nested.status_code, newline.status_code

    nested, newline = _run(scenario())
    assert nested == 400
    assert newline == 403
    assert fake_sns.visited == []


def test_readyz_does_not_tell_the_database_details(monkeypatch: pytest.MonkeyPatch):
    from core.infra import health

    class Broken:
        def connect(self):
            raise OperationalError("SELECT 1", {}, Exception("host db.internal port 5432 user x"))

    monkeypatch.setattr(health, "get_engine", lambda: Broken())

    async def scenario() -> httpx.Response:
        async with _client() as client:
            return await client.get("/readyz")

    response = _run(scenario())
    assert response.status_code == 503
    assert response.json()["database"] == "unavailable"
    assert "db.internal" not in response.text and "5432" not in response.text
