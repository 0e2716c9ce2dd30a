"""A password-reset mail through the SMTP transport to a real aiosmtpd server: delivered,
with CRLF line ends only (smtplib sends bytes as they are; servers refuse bare LF)."""

from __future__ import annotations

import email
import re

from core.infra.config import settings
from core.mail.compose import send_system_mail
from tests.services import smtp_sink


def test_system_mail_over_smtp_has_crlf_line_ends(monkeypatch):
    with smtp_sink() as sink:
        monkeypatch.setattr(settings, "email_transport", "smtp")
        monkeypatch.setattr(settings, "smtp_host", sink.host)
        monkeypatch.setattr(settings, "smtp_port", sink.port)
        send_system_mail(
            "ada@example.com",
            "Reset your password",
            "Line one.\nLine two.",
            link="http://127.0.0.1:8501/reset_password?token=abc",
        )
    [(sender, rcpts, raw)] = sink.messages
    assert rcpts == ["ada@example.com"] and sender == settings.system_from_email
    assert re.search(rb"(?<!\r)\n", raw) is None, "bare LF in the message"
    msg = email.message_from_bytes(raw)
    assert msg["Subject"] == "Reset your password"
    body = "".join(
        part.get_payload(decode=True).decode() for part in msg.walk() if not part.is_multipart()
    )
    assert "Line two." in body and "token=abc" in body
