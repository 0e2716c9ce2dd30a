"""The public service's abuse limits, shared by every webhook process through the database.

Each limited action appends a `form_throttle` row under its key; a new one is allowed while
fewer than `limit` rows of the key are younger than the window (a sliding window: "3 a day"
holds for any 24 hours, not per calendar day). Where the cap must be exact (confirmation
mails per address) the count and the insert happen under a per-key lock that lasts until
the caller's transaction ends: PostgreSQL's transaction-level advisory lock; on SQLite the
transaction itself began with BEGIN IMMEDIATE (core.infra.db), which already serializes
writers across processes.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from core.infra.db import rowcount
from core.models import FormThrottle


def address_key(email: str) -> str:
    """The key of one address: hashed, so the table holds no address in clear."""
    return "mail:" + hashlib.sha256(email.encode()).hexdigest()[:40]


def ip_key(ip: str) -> str:
    return "ip:" + (ip or "unknown")[:64]


def lock_number(key: str) -> int:
    """The PostgreSQL advisory lock number of `key`."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)


def lock(session: Session, key: str) -> None:
    """Hold `key` until the caller's transaction ends (PostgreSQL; see the module doc)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(text("SELECT pg_advisory_xact_lock(:n)"), {"n": lock_number(key)})


def used(session: Session, key: str, window: timedelta, now: datetime) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(FormThrottle)
            .where(FormThrottle.key == key, FormThrottle.at > now - window)
        )
        or 0
    )


def take(
    session: Session, key: str, limit: int, window: timedelta, now: datetime, exact: bool = True
) -> bool:
    """Book one use of `key` if fewer than `limit` were booked within `window`.

    `exact` takes the key's lock first (see the module doc); without it two processes may
    both take the last use, which is fine for a coarse limit such as posts per IP."""
    if exact:
        lock(session, key)
    if used(session, key, window, now) >= limit:
        return False
    session.add(FormThrottle(key=key, at=now))
    session.flush()
    return True


def sweep(session: Session, now: datetime, keep: timedelta = timedelta(days=1)) -> int:
    """Forget uses older than every window (beat)."""
    return rowcount(session.execute(delete(FormThrottle).where(FormThrottle.at < now - keep)))
