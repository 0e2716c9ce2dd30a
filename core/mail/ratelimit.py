"""The workspace's send rate, held across every worker process and host together.

A limiter hands out send slots: `reserve(key, n, rate)` books the next `n` slots of a
shared schedule (one slot every 1/rate seconds) and says how long to wait for the first.
The schedule lives where all workers see it: the `rate_limit` table (one row per key,
locked for the booking) or Redis (one Lua script, Redis's own clock). Throttling from the
provider pushes the schedule back for everyone (`penalize`).
"""

from __future__ import annotations

import time
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from core.infra.config import settings
from core.models import RateLimit


class RateLimiter(Protocol):
    def reserve(self, key: str, n: int, rate: float) -> float:
        """Book `n` slots at `rate` per second; seconds to wait before the first."""
        ...

    def penalize(self, key: str, seconds: float) -> None:
        """Nobody sends on `key` for `seconds` (after a throttling reply)."""
        ...


def _book(next_slot: float, now: float, n: int, rate: float) -> tuple[float, float]:
    """(start, new next_slot): an idle schedule does not bank slots for a burst."""
    start = max(next_slot, now)
    return start, start + n / rate


class DatabaseRateLimiter:
    """The schedule in the `rate_limit` table; the row lock orders the bookings."""

    def __init__(self, maker: sessionmaker[Session]) -> None:
        self.maker = maker

    def _row(self, session: Session, key: str) -> RateLimit:
        dialect = session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        session.execute(insert(RateLimit).values(key=key, next_slot=0.0).on_conflict_do_nothing())
        # SQLite's BEGIN IMMEDIATE already holds the write lock; FOR UPDATE is for PG.
        return session.scalars(
            select(RateLimit).where(RateLimit.key == key).with_for_update()
        ).one()

    def reserve(self, key: str, n: int, rate: float) -> float:
        with self.maker.begin() as session:
            row = self._row(session, key)
            now = time.time()
            start, row.next_slot = _book(row.next_slot, now, n, rate)
        return max(0.0, start - now)

    def penalize(self, key: str, seconds: float) -> None:
        with self.maker.begin() as session:
            row = self._row(session, key)
            row.next_slot = max(row.next_slot, time.time() + seconds)


_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
local start = math.max(nxt, now)
local after = start + tonumber(ARGV[1]) / tonumber(ARGV[2])
redis.call('SET', KEYS[1], string.format('%.6f', after), 'EX', 3600)
return string.format('%.6f', start - now)
"""
_PENALIZE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
local after = math.max(nxt, now + tonumber(ARGV[1]))
redis.call('SET', KEYS[1], string.format('%.6f', after), 'EX', 3600)
return 1
"""


class RedisRateLimiter:
    """The schedule in one Redis key, booked atomically by a script on Redis's clock."""

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self._reserve = self.client.register_script(_RESERVE)
        self._penalize = self.client.register_script(_PENALIZE)

    def reserve(self, key: str, n: int, rate: float) -> float:
        return max(0.0, float(self._reserve(keys=[f"mailwright:rate:{key}"], args=[n, rate])))

    def penalize(self, key: str, seconds: float) -> None:
        self._penalize(keys=[f"mailwright:rate:{key}"], args=[seconds])


def get_limiter(maker: sessionmaker[Session] | None = None) -> RateLimiter:
    """The configured limiter (RATE_LIMIT_BACKEND: database or redis)."""
    if settings.rate_limit_backend == "redis":
        return RedisRateLimiter(settings.redis_url)
    if maker is None:
        from core.infra.db import get_sessionmaker

        maker = get_sessionmaker()
    return DatabaseRateLimiter(maker)


def acquire(limiter: RateLimiter, key: str, n: int, rate: float) -> None:
    """Wait for `n` slots; the headroom keeps any one-second window under the rate.

    A process that wakes up late (a loaded machine) would send inside slots booked by
    others; it lets its slots go and books new ones instead.
    """
    rate = rate * settings.send_rate_headroom
    tolerance = max(0.005, min(0.05, n / rate))
    for _ in range(5):
        wait = limiter.reserve(key, n, rate)
        due = time.monotonic() + wait
        if wait > 0:
            time.sleep(wait)
        if time.monotonic() - due <= tolerance:
            return
