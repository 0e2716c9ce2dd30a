"""Real mail services for tests: moto_server (SES v2 over HTTP) and an aiosmtpd SMTP sink.

with moto_ses(tmp_path) as ses:            # a moto_server process on a free port
    monkeypatch.setenv(...ses.env)          # boto3 reaches it through AWS_ENDPOINT_URL
    ses.verify("acme.io")
    ... send ...
    ses.raw_messages()                     # what SES "sent", read from /moto-api/data.json

with smtp_sink() as sink:                   # an aiosmtpd server in a thread
    settings.smtp_port = sink.port
    ... send ...
    sink.messages                           # [(mail_from, rcpt_tos, bytes)]
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.processes import BIN, Proc, free_port, http_ok, wait_until


@dataclass
class MotoSes:
    url: str
    proc: Proc
    region: str = "us-east-1"

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to talk to this server with boto3."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }

    def client(self):
        import boto3

        return boto3.client(
            "sesv2",
            region_name=self.region,
            endpoint_url=self.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def verify(self, identity: str) -> None:
        """Verify a domain or address, as SES requires before sending from it."""
        self.client().create_email_identity(EmailIdentity=identity)

    def data(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=10) as response:
            return json.load(response)

    def raw_messages(self) -> list[dict]:
        """Sent raw messages: dicts with source, destinations and raw_data."""
        return list(self.data().get("ses", {}).get("RawMessage", []))

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).close()


@contextmanager
def moto_ses(log_dir: Path) -> Iterator[MotoSes]:
    """A moto_server process on a free port, stopped afterwards."""
    port = free_port()
    proc = Proc(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        {"PATH": str(BIN) + ":/usr/bin:/bin"},
        log_dir / "moto.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(f"{url}/moto-api/data.json"), 60, "moto_server")
        yield MotoSes(url, proc)
    finally:
        proc.stop()


@dataclass
class SmtpSink:
    host: str
    port: int
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    # Reply with this code and text to the next DATA commands, then accept again.
    fail_next: list[tuple[int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server, session, envelope) -> str:
        with self.sink.lock:
            if self.sink.fail_next:
                code, text = self.sink.fail_next.pop(0)
                return f"{code} {text}"
            self.sink.messages.append(
                (envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content))
            )
        return "250 OK"


@contextmanager
def smtp_sink() -> Iterator[SmtpSink]:
    """An aiosmtpd server on a free port in a background thread."""
    from aiosmtpd.controller import Controller

    port = free_port()
    sink = SmtpSink("127.0.0.1", port)
    controller = Controller(_Handler(sink), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()
