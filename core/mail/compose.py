"""Building RFC 5322 messages, and the few system mails (reset, invitation)."""

from __future__ import annotations

import html as html_lib
import unicodedata
from email.headerregistry import Address
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import SMTP
from email.utils import formataddr, formatdate, make_msgid

from email_validator import EmailNotValidError, validate_email

from core.infra.config import settings
from core.infra.errors import ValidationFailed
from core.mail.transports import Outgoing, get_transport

SENDER_NAME_MAX = 200


def check_sender_address(address: str, label: str = "from") -> str:
    """A From or Reply-To address every transport can send: one address, ASCII, lower case.

    An IDNA domain is kept in its ASCII form (xn--...). A non-ASCII local part needs
    SMTPUTF8, which neither SES nor our SMTP path offers: refused here rather than
    failing every message later with UnicodeEncodeError. Line breaks cannot pass."""
    address = (address or "").strip()
    if not address:
        return ""
    _one_line(address, label)
    try:
        checked = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise ValidationFailed(f"The {label} address {address!r} cannot be used: {exc}") from exc
    if checked.ascii_email is None:  # not expected: allow_smtputf8=False refuses such addresses
        raise ValidationFailed(f"The {label} address {address!r} has no ASCII form.")
    return checked.ascii_email.lower()


def _one_line(address: str, label: str) -> str:
    """An address already checked where it was typed: here only refuse a second line."""
    address = (address or "").strip()
    if any(unicodedata.category(ch).startswith("C") for ch in address):
        raise ValidationFailed(f"The {label} address cannot contain line breaks or control codes.")
    return address


def check_sender_name(name: str, label: str = "from name") -> str:
    """A display name for From: any script, but no line breaks or control codes."""
    name = (name or "").strip()
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in name):
        raise ValidationFailed(f"The {label} cannot contain line breaks or control codes.")
    if len(name) > SENDER_NAME_MAX:
        raise ValidationFailed(f"The {label} is longer than {SENDER_NAME_MAX} characters.")
    return name


def address_header(field: str, name: str, address: str) -> str:
    """`From: Name <addr>` built and folded by the email library (encoded words as needed).

    Raises ValidationFailed for a value that would not be one header."""
    try:
        value = str(Address(display_name=name, addr_spec=address))
        parsed_name, parsed = SMTP.header_store_parse(field, value)
        return SMTP.fold(parsed_name, parsed).rstrip("\r\n")
    except (ValueError, IndexError, TypeError) as exc:
        raise ValidationFailed(
            f"The {field} header cannot be built from {address!r}: {exc}"
        ) from exc


def build_mime(
    *,
    sender: str,
    sender_name: str = "",
    to: str,
    subject: str,
    html: str | None,
    text: str,
    reply_to: str = "",
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """A multipart/alternative message as bytes.

    Uses the compat32 `email.mime` classes: about three times faster than EmailMessage
    with the default policy, which matters at campaign volume.
    """
    msg: MIMEMultipart | MIMEText
    if html is not None:
        msg = MIMEMultipart("alternative")
        msg.attach(MIMEText(text, "plain", "utf-8"))
        msg.attach(MIMEText(html, "html", "utf-8"))
    else:
        msg = MIMEText(text, "plain", "utf-8")
    name = check_sender_name(sender_name)
    sender, to, reply_to = (
        _one_line(v, label) for v, label in ((sender, "from"), (to, "to"), (reply_to, "reply-to"))
    )
    msg["From"] = formataddr((name, sender)) if name else sender
    msg["To"] = to
    msg["Subject"] = " ".join(subject.split())  # a rendered subject may hold line breaks
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = message_id or make_msgid(domain=sender.rpartition("@")[2] or None)
    if reply_to:
        msg["Reply-To"] = reply_to
    for field, value in (headers or {}).items():
        msg[field] = " ".join(value.split())
    # CRLF line ends: smtplib sends bytes as they are, and SMTP servers refuse bare LF.
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def send_system_mail(to: str, subject: str, text: str, link: str | None = None) -> str:
    """A plain transactional mail (reset, invitation) through the configured transport."""
    html = None
    if link:
        body = html_lib.escape(text).replace("\n", "<br>")
        html = (
            f"<html><body><p>{body}</p>"
            f'<p><a href="{html_lib.escape(link)}">{html_lib.escape(link)}</a></p></body></html>'
        )
        text = f"{text}\n\n{link}\n"
    raw = build_mime(
        sender=settings.system_from_email,
        sender_name="Mailwright",
        to=to,
        subject=subject,
        html=html,
        text=text,
    )
    transport = get_transport()
    return transport.send(Outgoing(raw=raw, sender=settings.system_from_email, recipients=[to]))
