"""Building a campaign's messages fast (RFC 5322 bytes assembled directly, From and
Reply-To folded once by the email library), and the per-process transport and rate
limiter the pipeline sends through."""

from __future__ import annotations

import binascii
import functools
import os
import re
import threading
import time
from collections.abc import Iterable
from email.header import Header
from email.utils import formatdate
from typing import Any

from sqlalchemy.orm import Session

from core.content.rendering import (
    MailContext,
    Rendered,
    compile_template,
    render_for_contact,
)
from core.infra.config import settings
from core.mail.compose import address_header
from core.mail.ratelimit import RateLimiter, get_limiter
from core.mail.transports import Outgoing, Transport, get_transport
from core.models import (
    Campaign,
    Variant,
    Workspace,
)

IDEMPOTENT_TRANSPORTS = ("outbox",)


CONTACT_FIELDS = (
    "email",
    "first_name",
    "last_name",
    "company",
    "city",
    "country",
    "phone",
    "custom_fields",
)


def _header(value: str) -> str:
    value = " ".join(value.split())  # no header injection through line breaks
    return value if value.isascii() else Header(value, "utf-8").encode()


def _b64(text: str) -> str:
    """Base64 in 76-character CRLF lines (one C call, then slicing)."""
    encoded = binascii.b2a_base64(text.encode("utf-8"), newline=False).decode("ascii")
    return "\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))


class Composer:
    """Everything about a campaign's mail that is the same for every recipient."""

    def __init__(self, campaign: Campaign, workspace: Workspace) -> None:
        self.campaign_id = campaign.id
        self.workspace_id = campaign.workspace_id
        self.sender = campaign.from_email or workspace.from_email
        self.domain = self.sender.rpartition("@")[2] or "mailwright.local"
        name = campaign.from_name or workspace.from_name
        # Whole header lines, built by the email library once per campaign.
        self.from_header = address_header("From", name, self.sender)
        # An A/B variant may try another From name (same address): its header, by variant.
        self.variant_from: dict[int | None, str] = {}
        self.reply_to = campaign.reply_to or workspace.reply_to
        self.reply_to_header = (
            address_header("Reply-To", "", self.reply_to) if self.reply_to else ""
        )
        self.track_opens = campaign.track_opens
        self.track_clicks = campaign.track_clicks
        self.configuration_set = workspace.ses_configuration_set
        self.context = MailContext(
            workspace_id=campaign.workspace_id,
            workspace_name=workspace.name,
            postal_address=workspace.postal_address,
            campaign_name=campaign.name,
        )
        label = re.sub(r"[^A-Za-z0-9 ._-]", "", campaign.name)[:60].strip() or "Campaign"
        self.list_id = f"{label} <{campaign.id}.{workspace.slug}.{self.domain}>"
        self.compiled: dict[int | None, Any] = {}

    def compile_variants(self, session: Session, variants: Iterable[Variant]) -> None:
        for v in variants:
            self.compiled[v.id] = compile_template(v.subject, v.html, v.text)
            if v.from_name:
                self.variant_from[v.id] = address_header("From", v.from_name, self.sender)

    def render(self, row: dict[str, Any], unsubscribe: str) -> Rendered:
        compiled = self.compiled.get(row["variant_id"]) or next(iter(self.compiled.values()))
        return render_for_contact(
            compiled,
            row,
            self.context,
            message_id=row["message_id"],
            track_opens=self.track_opens,
            track_clicks=self.track_clicks,
            unsubscribe_url=unsubscribe,
        )

    def build(
        self,
        *,
        message_id: int,
        to: str,
        rendered: Rendered,
        unsubscribe: str,
        date: str = "",
        variant_id: int | None = None,
    ) -> bytes:
        """RFC 5322 bytes, assembled directly: several times faster than `email.message`."""
        boundary = f"=_mw{message_id}_{self.campaign_id}"
        lines = [
            self.variant_from.get(variant_id, self.from_header),
            f"To: {to}",
            f"Subject: {_header(rendered.subject)}",
            f"Date: {date or formatdate(usegmt=True)}",
            f"Message-ID: <mw.{self.campaign_id}.{message_id}.{int(time.time())}@{self.domain}>",
        ]
        if self.reply_to_header:
            lines.append(self.reply_to_header)
        lines += [
            f"List-Unsubscribe: <{unsubscribe}>",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            f"List-Id: {_header(self.list_id)}",
            f"X-Mailwright-Campaign: {self.campaign_id}",
            "MIME-Version: 1.0",
            f'Content-Type: multipart/alternative; boundary="{boundary}"',
            "",
            f"--{boundary}",
            'Content-Type: text/plain; charset="utf-8"',
            "Content-Transfer-Encoding: base64",
            "",
            _b64(rendered.text),
            f"--{boundary}",
            'Content-Type: text/html; charset="utf-8"',
            "Content-Transfer-Encoding: base64",
            "",
            _b64(rendered.html),
            f"--{boundary}--",
            "",
        ]
        # CRLF throughout (RFC 5322): smtplib sends bytes as they are.
        return "\r\n".join(lines).encode("ascii")

    def outgoing(self, raw: bytes, message_id: int, to: str) -> Outgoing:
        return Outgoing(
            raw=raw,
            sender=self.sender,
            recipients=[to],
            key=str(message_id),
            tags={"campaign_id": str(self.campaign_id), "message_id": str(message_id)},
            configuration_set=self.configuration_set,
        )


_local = threading.local()


def get_transport_cached() -> Transport:
    """One transport per thread and configuration (SMTP connections and boto3 clients are reused)."""
    key = (
        settings.email_transport,
        str(settings.outbox_dir),
        settings.smtp_host,
        settings.smtp_port,
        os.environ.get("AWS_ENDPOINT_URL", ""),
    )
    if getattr(_local, "key", None) != key:
        _local.transport = get_transport()
        _local.key = key
    return _local.transport


@functools.lru_cache(maxsize=4)
def _limiter(url: str, backend: str) -> RateLimiter:
    from core.infra.db import get_sessionmaker

    return get_limiter(get_sessionmaker(url))


def limiter() -> RateLimiter:
    return _limiter(settings.database_url, settings.rate_limit_backend)
