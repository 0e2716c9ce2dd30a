"""The pipeline in-process: headers on the bytes, tracking, failures, throttling, controls."""

from __future__ import annotations

import re
from email.message import Message as MimeMessage

import pytest
from sqlalchemy import func, select

from core.campaigns import service as campaigns
from core.infra.db import get_sessionmaker, session_scope
from core.infra.errors import PermanentSendError, ThrottledSendError, TransportMisconfigured
from core.ingest import tracking
from core.mail.transports import OutboxTransport
from core.models import Event, Message
from core.sending import pipeline as sending
from tests.helpers import message_text, outbox_messages
from tests.sending.builders import add_excluded, make_campaign, make_setup


def run_tasks(enqueued: list, **kwargs) -> None:
    """Run the recorded tasks in-process until none are left (the worker's job in production)."""
    while enqueued:
        name, args, _ = enqueued.pop(0)
        if name == "worker.tasks_sending.start_campaign":
            sending.start_campaign(get_sessionmaker(), *args)
        elif name == sending.BATCH_TASK:
            sending.send_batch(get_sessionmaker(), *args, **kwargs)


def start(live_db, contacts=6, rate=1000.0, excluded=False):
    with session_scope() as s:
        setup = make_setup(s, contacts=contacts, rate=rate)
        skipped = add_excluded(s, setup) if excluded else []
        cid = make_campaign(s, setup)
        campaigns.send_now(s, setup.actor, cid)
    return setup, cid, skipped


def html_part(msg: MimeMessage) -> str:
    for part in msg.walk():
        if part.get_content_type() == "text/html":
            return part.get_payload(decode=True).decode()
    return ""


def status_of(setup, cid) -> dict:
    with session_scope() as s:
        return campaigns.campaign_status(s, setup.actor, cid)


def test_campaign_to_the_outbox_with_rfc8058_headers_and_tracking(live_db, enqueued, outbox):
    setup, cid, skipped = start(live_db, contacts=6, excluded=True)
    run_tasks(enqueued)
    messages = outbox_messages(outbox)
    assert sorted(m["To"] for m in messages) == sorted(f"r{i}@example.com" for i in range(6))
    status = status_of(setup, cid)
    assert (status["status"], status["sent"], status["failed"], status["queued"]) == (
        "sent",
        6,
        0,
        0,
    )
    with session_scope() as s:
        ledger = {m.email: m for m in s.scalars(select(Message).where(Message.campaign_id == cid))}
        assert s.scalar(select(func.count()).select_from(Event).where(Event.type == "sent")) == 6
    for msg in messages:
        row = ledger[msg["To"]]
        assert row.status == "sent" and row.provider_message_id == f"outbox-{row.id}"
        # RFC 8058: an https URI in List-Unsubscribe and the one-click POST header.
        unsubscribe = re.fullmatch(r"<(http[^>]+)>", msg["List-Unsubscribe"]).group(1)
        target = tracking.parse_unsubscribe(unsubscribe.rsplit("/", 1)[1])
        assert (target.contact_id, target.message_id) == (row.contact_id, row.id)
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["List-Id"].startswith("Launch <")
        assert msg["Message-ID"].endswith("@acme.io>")
        assert msg["From"] == "Acme News <news@acme.io>"
        assert msg["Subject"] == f"Hi {row.email.split('@')[0].replace('r', 'Name')}"
        html = html_part(msg)
        assert "Hello Name" in html and "from Initech" in html
        click = re.search(r'href="([^"]+/t/c/[^"]+)"', html).group(1)
        parsed = tracking.parse_click(click.rsplit("/", 1)[1])
        assert parsed.url == "https://example.org/offer?a=1&b=2" and parsed.message_id == row.id
        assert tracking.open_url(setup.workspace_id, row.id) in html
        assert unsubscribe in message_text(msg)
    assert not {m["To"] for m in messages} & set(skipped)


class Flaky:
    """A transport wrapper that injects provider errors for chosen recipients."""

    name = "ses"

    def __init__(self, inner, throttle_first: int = 0, reject: str = "", misconfigured=False):
        self.inner = inner
        self.throttles_left = throttle_first
        self.reject = reject
        self.misconfigured = misconfigured
        self.calls = 0

    def send(self, message):
        self.calls += 1
        if self.misconfigured:
            raise TransportMisconfigured("SES refused: verify the sender identity news@acme.io")
        if self.throttles_left:
            self.throttles_left -= 1
            raise ThrottledSendError("SES Throttling: Maximum sending rate exceeded.")
        if message.recipients[0] == self.reject:
            raise PermanentSendError("SES MessageRejected: Email address is not verified.")
        return self.inner.send(message)


def test_throttling_backs_off_and_loses_nobody_permanent_errors_fail_one(
    live_db, enqueued, outbox, monkeypatch
):
    from core.infra.config import settings

    monkeypatch.setattr(settings, "send_max_backoff", 0.05)
    setup, cid, _ = start(live_db, contacts=5)
    flaky = Flaky(OutboxTransport(outbox), throttle_first=4, reject="r3@example.com")
    run_tasks(enqueued, transport=flaky)
    got = sorted(m["To"] for m in outbox_messages(outbox))
    assert got == ["r0@example.com", "r1@example.com", "r2@example.com", "r4@example.com"]
    status = status_of(setup, cid)
    assert (status["status"], status["sent"], status["failed"]) == ("sent", 4, 1)
    with session_scope() as s:
        (reason,) = [f["reason"] for f in campaigns.failures(s, setup.actor, cid)]
    assert "MessageRejected" in reason


def test_misconfigured_transport_fails_the_campaign_once_and_retry_resumes(
    live_db, enqueued, outbox
):
    setup, cid, _ = start(live_db, contacts=4)
    broken = Flaky(OutboxTransport(outbox), misconfigured=True)
    run_tasks(enqueued, transport=broken)
    assert broken.calls == 1  # not one failure per message
    status = status_of(setup, cid)
    assert status["status"] == "failed" and "verify the sender" in status["error"]
    assert status["queued"] == 4 and status["failed"] == 0
    # The cause is fixed: "retry failed" resumes the campaign with the messages never sent.
    with session_scope() as s:
        assert campaigns.retry_failed(s, setup.actor, cid) == 0
    run_tasks(enqueued)
    assert status_of(setup, cid)["sent"] == 4
    assert len(outbox_messages(outbox)) == 4


def test_pause_resume_cancel(live_db, enqueued, outbox):
    setup, cid, _ = start(live_db, contacts=6)
    sending.start_campaign(get_sessionmaker(), cid)
    enqueued[:] = [e for e in enqueued if e[0] == sending.BATCH_TASK]
    with session_scope() as s:
        campaigns.pause(s, setup.actor, cid)
    run_tasks(enqueued)
    assert outbox_messages(outbox) == []
    with session_scope() as s:
        campaigns.resume(s, setup.actor, cid)
    run_tasks(enqueued)
    assert len(outbox_messages(outbox)) == 6
    assert status_of(setup, cid)["status"] == "sent"

    with session_scope() as s:
        clone = campaigns.clone_campaign(s, setup.actor, cid).id
        campaigns.send_now(s, setup.actor, clone)
    sending.start_campaign(get_sessionmaker(), clone)
    with session_scope() as s:
        campaigns.cancel(s, setup.actor, clone)
    run_tasks(enqueued)
    status = status_of(setup, clone)
    assert (status["status"], status["cancelled"], status["sent"]) == ("cancelled", 6, 0)
    assert len(outbox_messages(outbox)) == 6


def test_a_template_that_does_not_render_cannot_be_sent(live_db):
    from core.models import Template

    with session_scope() as s:
        setup = make_setup(s, contacts=1)
        cid = make_campaign(s, setup)
        s.get(Template, setup.template_id).html = "<p>{{ 1 / 0 }}</p>"
    with session_scope() as s, pytest.raises(campaigns.CampaignNotSendable) as info:
        campaigns.send_now(s, setup.actor, cid)
    assert "does not render" in str(info.value)
    with session_scope() as s:
        empty = campaigns.create_campaign(s, setup.actor, "Empty").id
    with session_scope() as s, pytest.raises(campaigns.CampaignNotSendable) as info:
        campaigns.send_now(s, setup.actor, empty)
    assert "no subject" in str(info.value) and "no recipients" in str(info.value)
