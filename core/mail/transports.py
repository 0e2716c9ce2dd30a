"""Mail transports behind one interface: the outbox (Maildir files), SMTP and SES."""

from __future__ import annotations

import contextlib
import os
import smtplib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from core.infra.config import settings
from core.infra.errors import (
    PermanentSendError,
    ThrottledSendError,
    TransientSendError,
    TransportMisconfigured,
)


@dataclass
class Outgoing:
    """One message ready for the wire."""

    raw: bytes
    sender: str
    recipients: list[str]
    # Stable name for this send (the ledger's message id): the outbox overwrites on repeat.
    key: str = field(default_factory=lambda: uuid.uuid4().hex)
    tags: dict[str, str] = field(default_factory=dict)
    configuration_set: str = ""


class Transport(Protocol):
    name: str

    def send(self, message: Outgoing) -> str:
        """Hand the message over; return the provider's message id."""
        ...


class OutboxTransport:
    """Writes each message as an RFC 5322 file in a Maildir; the laptop default."""

    name = "outbox"

    def __init__(self, directory: Path | str | None = None) -> None:
        directory = directory or settings.outbox_dir
        assert directory is not None  # Settings defaults it to data_dir / "outbox"
        self.directory = Path(directory)
        for sub in ("tmp", "new", "cur"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)

    def send(self, message: Outgoing) -> str:
        name = f"{message.key}.eml"
        tmp = self.directory / "tmp" / f"{name}.{os.getpid()}"
        with open(tmp, "wb") as fh:
            fh.write(message.raw)
        # rename is atomic: a reader sees the whole file or none, and a repeat replaces it.
        os.replace(tmp, self.directory / "new" / name)
        return f"outbox-{message.key}"


class SmtpTransport:
    """Any SMTP server (SES's SMTP interface included), with STARTTLS and login."""

    name = "smtp"

    def __init__(self) -> None:
        self._conn: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        if self._conn is not None:
            try:
                self._conn.noop()
                return self._conn
            except smtplib.SMTPException:
                self._conn = None
        try:
            conn = smtplib.SMTP(
                settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout
            )
            if settings.smtp_starttls:
                conn.starttls()
            if settings.smtp_user:
                conn.login(settings.smtp_user, settings.smtp_password)
        except smtplib.SMTPAuthenticationError as exc:
            raise TransportMisconfigured(
                f"The SMTP server refused the login for {settings.smtp_user!r}: check "
                "SMTP_USER and SMTP_PASSWORD."
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientSendError(
                f"Cannot reach the SMTP server {settings.smtp_host}:{settings.smtp_port}: {exc}"
            ) from exc
        self._conn = conn
        return conn

    def send(self, message: Outgoing) -> str:
        conn = self._connect()
        try:
            refused = conn.sendmail(message.sender, message.recipients, message.raw)
        except smtplib.SMTPRecipientsRefused as exc:
            raise PermanentSendError(f"Recipient refused: {exc.recipients}") from exc
        except smtplib.SMTPResponseException as exc:
            self.close()
            error = exc.smtp_error  # bytes from a server reply, str from some smtplib checks
            text = error.decode(errors="replace") if isinstance(error, bytes) else error or ""
            if exc.smtp_code == 454 or "throttl" in text.lower():
                raise ThrottledSendError(f"SMTP {exc.smtp_code}: {text}") from exc
            if 400 <= exc.smtp_code < 500:
                raise TransientSendError(f"SMTP {exc.smtp_code}: {text}") from exc
            raise PermanentSendError(f"SMTP {exc.smtp_code}: {text}") from exc
        except (TimeoutError, smtplib.SMTPServerDisconnected, OSError) as exc:
            self.close()
            raise TransientSendError(f"SMTP connection lost: {exc}") from exc
        if refused:
            raise PermanentSendError(f"Recipient refused: {refused}")
        return f"smtp-{message.key}"

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._conn.quit()
            self._conn = None


# SES error codes, sorted by what the sender should do about them.
SES_THROTTLING = {
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "MaxSendRateExceeded",
}
SES_TRANSIENT = {
    "ServiceUnavailable",
    "InternalFailure",
    "LimitExceededException",
    "RequestTimeout",
}
SES_MISCONFIGURED = {
    "AccountSuspendedException",
    "SendingPausedException",
    "MailFromDomainNotVerifiedException",
    "ConfigurationSetDoesNotExist",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "AccessDeniedException",
    "AccessDenied",
}


NO_AWS_CREDENTIALS = (
    "No AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or an instance role) "
    "for SES."
)


class SesTransport:
    """Amazon SES v2 SendEmail with raw content; boto3 honours AWS_ENDPOINT_URL."""

    name = "ses"

    def __init__(self) -> None:
        import boto3

        self.client = boto3.client("sesv2", region_name=settings.aws_region)

    def send(self, message: Outgoing) -> str:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
        )

        kwargs: dict = {
            "FromEmailAddress": message.sender,
            "Destination": {"ToAddresses": message.recipients},
            "Content": {"Raw": {"Data": message.raw}},
        }
        config_set = message.configuration_set or settings.ses_configuration_set
        if config_set:
            kwargs["ConfigurationSetName"] = config_set
        if message.tags:
            kwargs["EmailTags"] = [{"Name": k, "Value": str(v)} for k, v in message.tags.items()]
        try:
            response = self.client.send_email(**kwargs)
        except NoCredentialsError as exc:
            raise TransportMisconfigured(NO_AWS_CREDENTIALS) from exc
        except EndpointConnectionError as exc:
            raise TransientSendError(f"Cannot reach SES: {exc}") from exc
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            text = exc.response.get("Error", {}).get("Message", str(exc))
            if code in SES_THROTTLING or "rate exceeded" in text.lower():
                raise ThrottledSendError(f"SES {code}: {text}") from exc
            if code in SES_MISCONFIGURED or "not verified" in text.lower():
                raise TransportMisconfigured(
                    f"SES refused to send ({code}: {text}). Verify the sender identity in SES "
                    "and check the configuration set and credentials."
                ) from exc
            if code in SES_TRANSIENT:
                raise TransientSendError(f"SES {code}: {text}") from exc
            raise PermanentSendError(f"SES {code}: {text}") from exc
        except BotoCoreError as exc:
            raise TransientSendError(f"SES call failed: {exc}") from exc
        return response["MessageId"]


@dataclass(frozen=True)
class SesQuota:
    """The SES account's sending limits (SESv2 GetAccount)."""

    max_send_rate: float  # messages per second
    max_24_hour_send: float
    sent_last_24_hours: float
    sending_enabled: bool
    production_access: bool


def read_ses_quota() -> SesQuota:
    """Ask SES (GetAccount) for this account's send rate and daily quota.

    Raises TransportMisconfigured with what to fix when SES cannot be asked."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        account = SesTransport().client.get_account()
    except NoCredentialsError as exc:
        raise TransportMisconfigured(NO_AWS_CREDENTIALS) from exc
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise TransportMisconfigured(
            f"SES did not give its quota ({error.get('Code', '')}: "
            f"{error.get('Message', exc)}). The credentials need ses:GetAccount."
        ) from exc
    except BotoCoreError as exc:
        raise TransportMisconfigured(f"Cannot reach SES to read its quota: {exc}") from exc
    quota = account.get("SendQuota") or {}
    return SesQuota(
        max_send_rate=float(quota.get("MaxSendRate", 0.0)),
        max_24_hour_send=float(quota.get("Max24HourSend", 0.0)),
        sent_last_24_hours=float(quota.get("SentLast24Hours", 0.0)),
        sending_enabled=bool(account.get("SendingEnabled", False)),
        production_access=bool(account.get("ProductionAccessEnabled", False)),
    )


def get_transport(name: str | None = None) -> Transport:
    """The configured transport (EMAIL_TRANSPORT), or the one named."""
    name = name or settings.email_transport
    if name == "outbox":
        return OutboxTransport()
    if name == "smtp":
        return SmtpTransport()
    if name == "ses":
        return SesTransport()
    raise TransportMisconfigured(f"Unknown EMAIL_TRANSPORT {name!r}: use outbox, smtp or ses.")
