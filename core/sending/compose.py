"""A campaign's messages (what is the same for every recipient, prepared once; the bytes
built by `core.mail.compose.MimeBuilder`), and the per-process transport and rate limiter
the pipeline sends through."""

from __future__ import annotations

import functools
import os
import re
import threading
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from core.content.rendering import (
    MailContext,
    Rendered,
    compile_template,
    render_for_contact,
)
from core.infra.config import settings
from core.mail.compose import MimeBuilder
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


class Composer:
    """Everything about a campaign's mail that is the same for every recipient; the
    message itself is built by `core.mail.compose.MimeBuilder`, as test and system mails."""

    def __init__(self, campaign: Campaign, workspace: Workspace) -> None:
        self.campaign_id = campaign.id
        self.workspace_id = campaign.workspace_id
        self.sender = campaign.from_email or workspace.from_email
        domain = self.sender.rpartition("@")[2] or "mailwright.local"
        label = re.sub(r"[^A-Za-z0-9 ._-]", "", campaign.name)[:60].strip() or "Campaign"
        self.list_id = f"{label} <{campaign.id}.{workspace.slug}.{domain}>"
        # From, Reply-To and the fixed headers: checked and built once per campaign.
        self.mime = MimeBuilder(
            sender=self.sender,
            sender_name=campaign.from_name or workspace.from_name,
            reply_to=campaign.reply_to or workspace.reply_to,
            headers={
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                "List-Id": self.list_id,
                "X-Mailwright-Campaign": str(campaign.id),
            },
        )
        self.domain = self.mime.domain
        self.from_header = self.mime.from_header
        # An A/B variant may try another From name (same address): its builder, by variant.
        self.variant_mime: dict[int | None, MimeBuilder] = {}
        self.track_opens = campaign.track_opens
        self.track_clicks = campaign.track_clicks
        self.configuration_set = workspace.ses_configuration_set
        self.context = MailContext(
            workspace_id=campaign.workspace_id,
            workspace_name=workspace.name,
            postal_address=workspace.postal_address,
            campaign_name=campaign.name,
        )
        self.compiled: dict[int | None, Any] = {}

    def compile_variants(self, session: Session, variants: Iterable[Variant]) -> None:
        for v in variants:
            self.compiled[v.id] = compile_template(v.subject, v.html, v.text)
            if v.from_name:
                self.variant_mime[v.id] = self.mime.with_sender_name(v.from_name)

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
        """The campaign's message for one recipient (ValidationFailed for an address no
        transport can send to)."""
        return self.variant_mime.get(variant_id, self.mime).build(
            to=to,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=f"<mw.{self.campaign_id}.{message_id}.{int(time.time())}@{self.domain}>",
            date=date,
            headers={"List-Unsubscribe": f"<{unsubscribe}>"},
            boundary=f"{message_id}_{self.campaign_id}",
        )

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
