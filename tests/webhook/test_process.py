"""The webhook as it runs in production: a real uvicorn process, pinned certificates, and\nthe worker that makes the events of what it stored."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from sqlalchemy import select

from core.infra.config import settings
from core.infra.db import session_scope
from core.ingest.tracking import open_url, unsubscribe_url
from core.models import Contact, Event, Suppression
from tests.processes import PROCESS_BACKEND, process_env, start_webhook, start_worker, wait_until
from tests.webhook.conftest import make_ledger
from tests.webhook.snsutil import CERT_PEM, CERT_URL, TOPIC, notification, ses_event


def request(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# The routes and the inbox drain run on both backends in-process (test_ses_events.py,
# test_tracking.py, test_batches.py); here the process and its pinned certificates.
@pytest.mark.slow
@pytest.mark.parametrize("backend", [PROCESS_BACKEND])
def test_uvicorn_process_verifies_stores_and_tracks(live_db, tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / CERT_URL.rsplit("/", 1)[-1]).write_bytes(CERT_PEM)
    with session_scope() as session:
        ledger = make_ledger(session, recipients=2)
    env = process_env(
        tmp_path,
        live_db,
        SNS_TOPIC_ARNS=TOPIC,
        SNS_CERT_DIR=str(certs),
        SECRET_KEY=settings.secret_key,
    )
    proc, base = start_webhook(env, tmp_path / "webhook.log", workers=2)
    try:
        first, second = ledger.messages
        body = ses_event("Bounce", first.provider_message_id, [first.email])
        signed = notification(body, version="2")
        headers = {"Content-Type": "text/plain", "x-amz-sns-message-type": "Notification"}
        raw = json.dumps(signed).encode()
        assert request(f"{base}/sns/ses", raw, headers) == (200, b'{"status":"stored"}')
        assert request(f"{base}/sns/ses", raw, headers) == (200, b'{"status":"replay"}')
        forged = json.dumps({**signed, "TopicArn": "arn:aws:sns:us-east-1:1:x"}).encode()
        assert request(f"{base}/sns/ses", forged, headers)[0] == 403

        pixel = open_url(ledger.workspace.id, second.id).removeprefix(settings.public_base_url)
        status, gif = request(base + pixel, headers={"User-Agent": "Thunderbird"})
        assert (status, gif[:6]) == (200, b"GIF89a")
        unsub = unsubscribe_url(ledger.workspace.id, second.contact_id, second.id)
        unsub = unsub.removeprefix(settings.public_base_url)
        assert request(base + unsub, b"List-Unsubscribe=One-Click")[0] == 200
    finally:
        proc.stop()

    # The webhook has stored the bounce in its inbox; a real worker (beat) makes its event.
    def bounced() -> bool:
        with session_scope() as session:
            return session.get(Contact, first.contact_id).status == "bounced"

    assert not bounced()
    worker = start_worker(env, tmp_path / "worker.log", beat=True)
    try:
        wait_until(bounced, 60, "the worker to make the bounce's event")
    finally:
        worker.stop()
    with session_scope() as session:
        types = sorted(session.scalars(select(Event.type)))
        assert types == ["bounce", "open", "unsubscribe"]
        assert session.get(Contact, first.contact_id).status == "bounced"
        assert session.get(Contact, second.contact_id).status == "unsubscribed"
        reasons = sorted(session.scalars(select(Suppression.reason)))
        assert reasons == ["bounce", "unsubscribe"]
