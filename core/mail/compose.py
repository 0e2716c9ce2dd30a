"""The one builder of RFC 5322 messages (`MimeBuilder`: campaigns, test sends, system mails),
the sender checks, and the few system mails (reset, invitation)."""

from __future__ import annotations

import binascii
import copy
import html as html_lib
import re
import secrets
import unicodedata
from collections.abc import Mapping
from email.header import Header
from email.headerregistry import Address
from email.policy import SMTP
from email.utils import formatdate, make_msgid

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


# A header field name (RFC 5322: printable ASCII but the colon), and the characters that
# must never reach a header value as they are (line breaks, control codes).
_FIELD_NAME = re.compile(r"[!-9;-~]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FOLD_AT = 78


def header_value(field: str, value: str) -> str:
    """An unstructured header's value on one line (line breaks become spaces), encoded and
    folded by the email library when it is not short ASCII."""
    value = " ".join(value.split())
    plain = value.isascii() and not _CONTROL.search(value)
    # Short, or one word (a URL in angle brackets): nowhere to fold, kept on its line.
    if plain and (len(field) + len(value) < _FOLD_AT - 2 or " " not in value):
        return value
    charset = "us-ascii" if plain else "utf-8"
    return Header(value, charset, header_name=field).encode(linesep="\r\n")


def _b64(text: str) -> str:
    """Base64 in 76-character CRLF lines (one C call, then slicing)."""
    encoded = binascii.b2a_base64(text.encode("utf-8"), newline=False).decode("ascii")
    return "\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))


class MimeBuilder:
    """The one MIME builder: system mails, test sends and every campaign message.

    What is the same for every message of a send (From, Reply-To, fixed headers such as
    List-Id) is checked and built once by the email library; `build` adds To, Subject, Date,
    Message-ID and the per-recipient headers and assembles the RFC 5322 bytes directly
    (CRLF line ends, base64 bodies), several times faster than `email.message`, which
    matters at campaign volume."""

    def __init__(
        self,
        *,
        sender: str,
        sender_name: str = "",
        reply_to: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.sender = _one_line(sender, "from")
        self.domain = self.sender.rpartition("@")[2] or "mailwright.local"
        self.from_header = address_header("From", check_sender_name(sender_name), self.sender)
        reply_to = _one_line(reply_to, "reply-to")
        self.reply_to_header = address_header("Reply-To", "", reply_to) if reply_to else ""
        self.fixed = [_header_line(f, v) for f, v in (headers or {}).items()]

    def with_sender_name(self, sender_name: str) -> MimeBuilder:
        """The same builder with another display name in From (an A/B variant's)."""
        other = copy.copy(self)
        other.from_header = address_header("From", check_sender_name(sender_name), self.sender)
        return other

    def build(
        self,
        *,
        to: str,
        subject: str,
        text: str,
        html: str | None,
        message_id: str = "",
        date: str = "",
        headers: Mapping[str, str] | None = None,
        boundary: str = "",
    ) -> bytes:
        """The message as bytes: multipart/alternative (text, then HTML), or text/plain
        alone when `html` is None. Raises ValidationFailed for a To that is not one ASCII
        address (neither SES nor our SMTP path offers SMTPUTF8)."""
        if not to.isascii() or _CONTROL.search(to) or "," in to:
            raise ValidationFailed(f"Cannot send to {to!r}: not one ASCII address.")
        lines = [
            self.from_header,
            f"To: {to}",
            f"Subject: {header_value('Subject', subject)}",
            f"Date: {date or formatdate(usegmt=True)}",
            f"Message-ID: {message_id or make_msgid(domain=self.domain)}",
        ]
        if self.reply_to_header:
            lines.append(self.reply_to_header)
        if headers:
            lines += [_header_line(f, v) for f, v in headers.items()]
        lines += self.fixed
        lines.append("MIME-Version: 1.0")
        if html is None:
            lines += [
                'Content-Type: text/plain; charset="utf-8"',
                "Content-Transfer-Encoding: base64",
                "",
                _b64(text),
                "",
            ]
        else:
            # Base64 lines never hold "=_" or "-": no body line can look like the boundary.
            boundary = f"=_mw{boundary or secrets.token_hex(8)}"
            lines += [
                f'Content-Type: multipart/alternative; boundary="{boundary}"',
                "",
                f"--{boundary}",
                'Content-Type: text/plain; charset="utf-8"',
                "Content-Transfer-Encoding: base64",
                "",
                _b64(text),
                f"--{boundary}",
                'Content-Type: text/html; charset="utf-8"',
                "Content-Transfer-Encoding: base64",
                "",
                _b64(html),
                f"--{boundary}--",
                "",
            ]
        # CRLF throughout: smtplib sends bytes as they are, and SMTP servers refuse bare LF.
        return "\r\n".join(lines).encode("ascii")


def _header_line(field: str, value: str) -> str:
    if not _FIELD_NAME.fullmatch(field):
        raise ValidationFailed(f"{field!r} cannot be a header name.")
    return f"{field}: {header_value(field, value)}"


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
    """One message built by `MimeBuilder` (system mails and test sends)."""
    builder = MimeBuilder(sender=sender, sender_name=sender_name, reply_to=reply_to)
    return builder.build(
        to=_one_line(to, "to"),
        subject=subject,
        text=text,
        html=html,
        message_id=message_id or "",
        headers=headers,
    )


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
