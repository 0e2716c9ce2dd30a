"""Signed, URL-safe tokens for links in mail (tracking, unsubscribe) and sessions.

A token is `base64url(payload) "." base64url(hmac)[:22]`; the HMAC covers a purpose so
a token made for one use (an open pixel) is worthless for another (an unsubscribe).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

from core.infra.config import settings
from core.infra.errors import InvalidToken


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@functools.lru_cache(maxsize=16)
def _keyed(secret: str, purpose: str) -> hmac.HMAC:
    # Keying HMAC costs more than hashing a short payload: campaigns sign ~10 URLs a message.
    return hmac.new(secret.encode(), purpose.encode() + b"\x00", hashlib.sha256)


def _mac(purpose: str, payload: bytes, key: str | None = None) -> bytes:
    mac = _keyed(key or settings.secret_key, purpose).copy()
    mac.update(payload)
    return mac.digest()[:16]


SEP = "\n"  # cannot occur in ids or in URLs


def sign(purpose: str, *parts: int | str, key: str | None = None) -> str:
    """A token carrying `parts` (strings without newlines) for `purpose`."""
    if any(SEP in str(p) for p in parts):
        raise ValueError("token parts cannot contain newlines")
    payload = SEP.join(str(p) for p in parts).encode()
    return f"{_b64(payload)}.{_b64(_mac(purpose, payload, key))}"


def unsign(purpose: str, token: str, key: str | None = None) -> list[str]:
    """The parts of a valid token; InvalidToken if forged, altered or malformed."""
    try:
        body, mac = token.split(".", 1)
        payload = _unb64(body)
        given = _unb64(mac)
    except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError
        raise InvalidToken("malformed token") from exc
    if not hmac.compare_digest(given, _mac(purpose, payload, key)):
        raise InvalidToken("bad token signature")
    return payload.decode().split(SEP)


def random_token() -> str:
    """A secret for one-time links (reset, invitation); store only its hash."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
