"""Amazon SNS messages: signature verification, certificate fetching, subscriptions.

An SNS HTTP(S) delivery is trusted only after, in this order:
1. its `SigningCertURL` passes `check_sns_url` (https, host `sns.<region>.amazonaws.com`
   or `.amazonaws.com.cn`, path ending in `.pem`);
2. its signature verifies with that certificate's RSA key (SignatureVersion 1:
   PKCS#1 v1.5 + SHA1, version 2: PKCS#1 v1.5 + SHA256) over the canonical string;
3. its topic is in `SNS_TOPIC_ARNS` and its timestamp is less than an hour old.

Certificates are fetched with TLS verification and a timeout, or read from
`SNS_CERT_DIR` (offline and pinned deployments), and the parsed public key is cached
per URL, successes only. Nothing here touches the database: storing is core.ingest.inbox.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from core.infra.clock import now
from core.infra.config import settings
from core.infra.errors import MailwrightError, ValidationFailed

log = logging.getLogger(__name__)

CERT_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
MAX_AGE = timedelta(hours=1)
CLOCK_SKEW = timedelta(minutes=5)
FETCH_TIMEOUT = 5.0
MAX_CERT_BYTES = 64 * 1024
# The public endpoint fetches certificates for URLs that anyone can name in a forged post:
# at most this many fetches at once, this many distinct new URLs a minute, and a failed
# URL is not tried again for FAILURE_TTL. SNS itself uses a handful of URLs for years.
MAX_CONCURRENT_FETCHES = 2
NEW_URLS_PER_MINUTE = 10
FAILURE_TTL = timedelta(minutes=10)

NOTIFICATION_KEYS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
SUBSCRIPTION_KEYS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
SIGNED_KEYS = {
    "Notification": NOTIFICATION_KEYS,
    "SubscriptionConfirmation": SUBSCRIPTION_KEYS,
    "UnsubscribeConfirmation": SUBSCRIPTION_KEYS,
}
HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}


class InvalidSignature(MailwrightError):
    """The message is not provably from Amazon SNS for one of our topics (HTTP 403)."""


class CertificateUnavailable(MailwrightError):
    """The signing certificate cannot be fetched now (HTTP 503, so SNS retries later)."""


class MalformedMessage(ValidationFailed):
    """The body is not an SNS message we can read (HTTP 400)."""


@dataclass(frozen=True)
class SnsEnvelope:
    """A verified SNS message."""

    type: str
    message_id: str
    topic_arn: str
    timestamp: datetime
    message: str
    subject: str | None
    subscribe_url: str | None
    raw: dict[str, Any]


def check_sns_url(url: str) -> str:
    """`url` if it is an https URL on an SNS host; InvalidSignature otherwise."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InvalidSignature("The SNS URL cannot be parsed.") from exc
    if parts.scheme != "https":
        raise InvalidSignature("The SNS URL is not https.")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise InvalidSignature("The SNS URL contains spaces or control characters.")
    # netloc, not hostname: a user part ("sns.x.amazonaws.com@evil") or a port is refused.
    if not CERT_HOST.match(parts.netloc):
        raise InvalidSignature(f"The SNS URL host {parts.netloc!r} is not an SNS host.")
    return url


@lru_cache(maxsize=64)
def check_cert_url(url: str) -> str:
    """`url` if it may name an SNS signing certificate. Cached: SNS uses a handful of
    certificate URLs, and a refused one raises, which is never cached."""
    check_sns_url(url)
    if not urlsplit(url).path.endswith(".pem"):
        raise InvalidSignature("The signing certificate URL does not name a .pem file.")
    return url


@lru_cache(maxsize=8)
def _topics(setting: str) -> frozenset[str]:
    return frozenset(arn.strip() for arn in setting.split(",") if arn.strip())


def https_get(
    url: str, timeout: float = FETCH_TIMEOUT, context: ssl.SSLContext | None = None
) -> bytes:
    """GET `url` with certificate and host name verification (the default context)."""
    request = urllib.request.Request(url, headers={"User-Agent": "mailwright-webhook"})
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=context or ssl.create_default_context())
    )
    with opener.open(request, timeout=timeout) as response:
        body = response.read(MAX_CERT_BYTES + 1)
    if len(body) > MAX_CERT_BYTES:
        raise InvalidSignature("The document at the SNS URL is too large.")
    return body


# How the webhook reaches SNS (certificates, SubscribeURL); tests replace it.
_http_get: Callable[[str], bytes] = https_get


def set_http_get(getter: Callable[[str], bytes] | None) -> None:
    """Replace the HTTP GET used for certificates and subscriptions (None restores it)."""
    global _http_get
    _http_get = getter or https_get
    certificates.clear()


class CertificateStore:
    """Public keys of SNS signing certificates, parsed once per URL (successes only)."""

    def __init__(self) -> None:
        self._keys: dict[str, tuple[rsa.RSAPublicKey, datetime, datetime]] = {}
        self._lock = threading.Lock()
        self._failed: dict[str, tuple[datetime, str]] = {}  # url -> (retry after, why)
        self._fetched_at: list[datetime] = []  # new URLs fetched in the last minute
        self._inflight: dict[str, asyncio.Future[None]] = {}
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()
            self._failed.clear()
            self._fetched_at.clear()

    def is_cached(self, url: str) -> bool:
        return url in self._keys

    async def fetch(self, url: str) -> None:
        """Load the certificate at `url` into the cache without blocking the event loop.

        Concurrent requests for one URL share one fetch; fetches run in a thread, a few
        at a time; a URL that failed is refused for FAILURE_TTL without a new fetch, and
        only NEW_URLS_PER_MINUTE distinct URLs are fetched a minute."""
        if url in self._keys:
            return
        failed = self._failed.get(url)
        if failed is not None and now() < failed[0]:
            raise InvalidSignature(f"The signing certificate could not be fetched: {failed[1]}")
        pending = self._inflight.get(url)
        if pending is not None:
            return await asyncio.shield(pending)
        current = now()
        self._fetched_at = [t for t in self._fetched_at if t > current - timedelta(minutes=1)]
        self._failed = {u: f for u, f in self._failed.items() if f[0] > current}
        if len(self._fetched_at) >= NEW_URLS_PER_MINUTE:
            raise CertificateUnavailable(
                "Too many new signing certificate URLs this minute; retry later."
            )
        self._fetched_at.append(current)
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:  # one per event loop
            self._slots = (loop, asyncio.Semaphore(MAX_CONCURRENT_FETCHES))
        future: asyncio.Future[None] = loop.create_future()
        self._inflight[url] = future
        try:
            async with self._slots[1]:
                await asyncio.to_thread(self.public_key, url)
        except InvalidSignature as exc:
            self._failed[url] = (now() + FAILURE_TTL, str(exc))
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        else:
            future.set_result(None)
        finally:
            self._inflight.pop(url, None)

    def _load_pem(self, url: str) -> bytes:
        if settings.sns_cert_dir is not None:
            name = urlsplit(url).path.rsplit("/", 1)[-1]
            path = settings.sns_cert_dir / name
            if not path.is_file():
                raise InvalidSignature(f"No pinned certificate {name} in SNS_CERT_DIR.")
            return path.read_bytes()
        try:
            return _http_get(url)
        except (OSError, ValueError, urllib.error.URLError, ssl.SSLError) as exc:
            raise InvalidSignature(f"The signing certificate could not be fetched: {exc}") from exc

    def public_key(self, url: str) -> rsa.RSAPublicKey:
        """The RSA key of the certificate at `url` (already checked with check_cert_url)."""
        cached = self._keys.get(url)
        if cached is None:
            pem = self._load_pem(url)
            try:
                cert = x509.load_pem_x509_certificate(pem)
            except ValueError as exc:
                raise InvalidSignature("The signing certificate is not a PEM certificate.") from exc
            key = cert.public_key()
            if not isinstance(key, rsa.RSAPublicKey):
                raise InvalidSignature("The signing certificate does not hold an RSA key.")
            cached = (key, cert.not_valid_before_utc, cert.not_valid_after_utc)
            with self._lock:
                self._keys[url] = cached
        key, not_before, not_after = cached
        if not not_before <= now() <= not_after:
            raise InvalidSignature("The signing certificate is not valid at this time.")
        return key


certificates = CertificateStore()


def string_to_sign(message: dict[str, Any]) -> bytes:
    """The canonical `Key\\nValue\\n` text SNS signs, for the message's type."""
    keys = SIGNED_KEYS.get(message.get("Type", ""))
    if keys is None:
        raise MalformedMessage(f"Unknown SNS message type {message.get('Type')!r}.")
    out: list[str] = []
    for key in keys:
        value = message.get(key)
        if value is None:
            if key == "Subject":  # absent or null: not part of the string
                continue
            raise MalformedMessage(f"The SNS message has no {key}.")
        if not isinstance(value, str):
            raise MalformedMessage(f"The SNS message's {key} is not a string.")
        out.append(f"{key}\n{value}\n")
    return "".join(out).encode()


def parse_body(body: bytes, header_type: str | None) -> dict[str, Any]:
    """The JSON object of an SNS POST; its `Type` must agree with the header SNS sets."""
    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedMessage("The body is not JSON.") from exc
    except RecursionError as exc:
        raise MalformedMessage("The body's JSON is nested too deeply.") from exc
    if not isinstance(message, dict):
        raise MalformedMessage("The body is not a JSON object.")
    if header_type != message.get("Type"):
        raise MalformedMessage("x-amz-sns-message-type does not agree with Type.")
    return message


def _timestamp(text: Any) -> datetime:
    try:
        value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError as exc:
        raise MalformedMessage("The SNS Timestamp is not an ISO 8601 time.") from exc
    if value.tzinfo is None:
        raise MalformedMessage("The SNS Timestamp has no time zone.")
    return value


async def verify_async(message: dict[str, Any], topic_arns: set[str] | None = None) -> SnsEnvelope:
    """`verify` for an event loop: a certificate not yet cached is fetched off the loop
    (see CertificateStore.fetch); the rest is microseconds of CPU."""
    cert_url = message.get("SigningCertURL") or message.get("SigningCertUrl")
    if isinstance(cert_url, str):
        string_to_sign(message)  # a malformed message is refused before any fetch
        check_cert_url(cert_url)
        if settings.sns_cert_dir is None and not certificates.is_cached(cert_url):
            await certificates.fetch(cert_url)
    return verify(message, topic_arns)


def verify(message: dict[str, Any], topic_arns: set[str] | None = None) -> SnsEnvelope:
    """A verified envelope, or InvalidSignature / MalformedMessage."""
    text = string_to_sign(message)
    version = message.get("SignatureVersion")
    algorithm = HASHES.get(version) if isinstance(version, str) else None
    if algorithm is None:
        raise InvalidSignature(f"SignatureVersion {version!r} is not accepted.")
    cert_url = message.get("SigningCertURL") or message.get("SigningCertUrl")
    if not isinstance(cert_url, str):
        raise InvalidSignature("The SNS message has no SigningCertURL.")
    check_cert_url(cert_url)
    try:
        signature = base64.b64decode(message.get("Signature") or "", validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidSignature("The signature is not base64.") from exc
    key = certificates.public_key(cert_url)
    try:
        key.verify(signature, text, padding.PKCS1v15(), algorithm())
    except _CryptoInvalidSignature as exc:
        raise InvalidSignature("The signature does not match the message.") from exc

    # settings.topic_arns, parsed once per value of the setting rather than per message.
    topics = _topics(settings.sns_topic_arns) if topic_arns is None else topic_arns
    topic = message["TopicArn"]
    if topic not in topics:
        raise InvalidSignature(f"Topic {topic} is not in SNS_TOPIC_ARNS.")
    sent = _timestamp(message["Timestamp"])
    current = now()
    if sent < current - MAX_AGE - CLOCK_SKEW or sent > current + CLOCK_SKEW:
        raise InvalidSignature("The SNS message is too old (or from the future).")
    return SnsEnvelope(
        type=message["Type"],
        message_id=message["MessageId"],
        topic_arn=topic,
        timestamp=sent,
        message=message["Message"],
        subject=message.get("Subject"),
        subscribe_url=message.get("SubscribeURL"),
        raw=message,
    )


def confirm_subscription(envelope: SnsEnvelope) -> None:
    """Visit the SubscribeURL of a verified SubscriptionConfirmation (SNS host only)."""
    if envelope.type != "SubscriptionConfirmation" or not envelope.subscribe_url:
        raise MalformedMessage("Not a subscription confirmation.")
    check_sns_url(envelope.subscribe_url)
    _http_get(envelope.subscribe_url)
    log.info("Confirmed the SNS subscription to %s", envelope.topic_arn)
