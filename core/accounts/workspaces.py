"""The workspace's sending identity and settings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from zoneinfo import available_timezones

from sqlalchemy.orm import Session

from core.infra.config import settings
from core.infra.errors import NotFound, ValidationFailed
from core.infra.permissions import Actor
from core.mail.compose import check_sender_address, check_sender_name
from core.mail.transports import SesQuota, read_ses_quota
from core.models import AuditLog, Workspace


@dataclass
class SendingIdentity:
    name: str
    from_name: str
    from_email: str
    reply_to: str
    postal_address: str
    max_send_rate: float
    ses_configuration_set: str
    tracking_source: str
    # IANA name: automations' date triggers and until_time waits (contacts without a zone).
    timezone: str = "UTC"


@cache
def time_zones() -> list[str]:
    """The IANA time zone names this machine knows, sorted (UTC first)."""
    return ["UTC", *sorted(z for z in available_timezones() if z != "UTC")]


def get_workspace(session: Session, actor: Actor) -> Workspace:
    actor.require("read")
    workspace = session.get(Workspace, actor.workspace_id)
    if workspace is None:
        raise NotFound("This workspace no longer exists.")
    return workspace


def update_sending_identity(session: Session, actor: Actor, identity: SendingIdentity) -> Workspace:
    """Admins change the name, sender, footer address, send rate, tracking source and the
    workspace's time zone."""
    actor.require("admin")
    workspace = get_workspace(session, actor)
    if not identity.name.strip():
        raise ValidationFailed("The workspace needs a name.")
    if not 0.1 <= identity.max_send_rate <= 10_000:
        raise ValidationFailed("The max send rate is between 0.1 and 10,000 messages a second.")
    if identity.tracking_source not in ("own", "ses"):
        raise ValidationFailed("Opens and clicks are counted from 'own' or 'ses'.")
    zone = identity.timezone.strip()
    if zone not in time_zones():
        raise ValidationFailed(f"{zone!r} is not a time zone (use a name such as Europe/Berlin).")
    workspace.name = identity.name.strip()
    workspace.from_name = check_sender_name(identity.from_name)
    workspace.from_email = check_sender_address(identity.from_email, "from")
    workspace.reply_to = check_sender_address(identity.reply_to, "reply-to")
    workspace.postal_address = identity.postal_address.strip()
    workspace.max_send_rate = float(identity.max_send_rate)
    workspace.ses_configuration_set = identity.ses_configuration_set.strip()
    workspace.tracking_source = identity.tracking_source
    workspace.timezone = zone
    session.add(
        AuditLog(workspace_id=workspace.id, user_id=actor.user_id, action="settings_changed")
    )
    return workspace


def adopt_ses_send_rate(session: Session, actor: Actor) -> SesQuota:
    """Set the workspace's max send rate to SES's own MaxSendRate (GetAccount); returns
    the quota read. Admins only; the transport's errors say what to fix."""
    actor.require("admin")
    workspace = get_workspace(session, actor)
    quota = read_ses_quota()
    if quota.max_send_rate <= 0:
        raise ValidationFailed("SES reported no send rate for this account.")
    workspace.max_send_rate = min(10_000.0, max(0.1, quota.max_send_rate))
    session.add(
        AuditLog(
            workspace_id=workspace.id,
            user_id=actor.user_id,
            action="settings_changed",
            detail={"max_send_rate": workspace.max_send_rate, "source": "SES GetAccount"},
        )
    )
    return quota


# The README section that says how to send through SES, and its GitHub-style anchor.
SES_README_SECTION = "Production: PostgreSQL, Redis and SES"
SES_README_ANCHOR = "production-postgresql-redis-and-ses"
README = Path(__file__).resolve().parents[2] / "README.md"


@dataclass
class MailDelivery:
    """Where this installation's mail goes (EMAIL_TRANSPORT), in a marketer's words."""

    transport: str  # "outbox", "smtp" or "ses"
    summary: str
    leaves_machine: bool


def mail_delivery() -> MailDelivery:
    """Which transport is active, said plainly (Settings shows it)."""
    transport = settings.email_transport
    if transport == "ses":
        where = f"Amazon SES ({settings.aws_region})"
        if settings.ses_configuration_set:
            where += f", configuration set {settings.ses_configuration_set}"
        return MailDelivery(transport, f"Mail goes out through {where}.", True)
    if transport == "smtp":
        tls = " with STARTTLS" if settings.smtp_starttls else ""
        return MailDelivery(
            transport,
            f"Mail goes out through the SMTP server {settings.smtp_host}:{settings.smtp_port}"
            f"{tls}.",
            True,
        )
    return MailDelivery(
        transport,
        f"Mail goes to the local outbox ({settings.outbox_dir}): nothing leaves this machine.",
        False,
    )


def readme_section(title: str = SES_README_SECTION) -> str:
    """The Markdown of one `## title` section of the README ("" when it is not there)."""
    try:
        text = README.read_text(encoding="utf-8")
    except OSError:
        return ""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    return match.group(1).strip() if match else ""
