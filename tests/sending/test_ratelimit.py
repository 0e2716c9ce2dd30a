"""The send rate holds across several processes together (database and Redis backends)."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from core import ratelimit

RATE = 20.0
SECONDS = 3.0


def _sender(url: str, backend: str, redis_url: str, begin, out) -> None:  # noqa: ANN001
    from core.config import settings
    from core.db import get_sessionmaker

    settings.rate_limit_backend = backend
    # More headroom than the default: 2 cores shared by many processes delay wake-ups.
    settings.send_rate_headroom = 0.9
    settings.redis_url = redis_url
    limiter = ratelimit.get_limiter(get_sessionmaker(url))
    stamps = []
    begin.wait(60)  # all processes compete over the same seconds
    end = time.time() + SECONDS
    while time.time() < end:
        ratelimit.acquire(limiter, "workspace:test", 1, RATE)
        stamps.append(time.time())
    out.put(stamps)


def _run(url: str, backend: str, redis_url: str = "", processes: int = 4) -> list[float]:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    begin = ctx.Barrier(processes)
    procs = [
        ctx.Process(target=_sender, args=(url, backend, redis_url, begin, out))
        for _ in range(processes)
    ]
    for p in procs:
        p.start()
    stamps = sorted(s for _ in procs for s in out.get(timeout=60))
    for p in procs:
        p.join(10)
    return stamps


def _check(stamps: list[float]) -> None:
    # Every one-second window (starting at any send) holds at most RATE sends.
    worst = 0
    j = 0
    for i, start in enumerate(stamps):
        while j < len(stamps) and stamps[j] < start + 1.0:
            j += 1
        worst = max(worst, j - i)
    assert worst <= RATE, worst
    # The processes that started late still get their share: the total is near the rate.
    span = stamps[-1] - stamps[0]
    assert len(stamps) / span >= 0.8 * RATE, (len(stamps), span)


def test_rate_limit_across_processes_on_the_database(live_db):
    _check(_run(live_db, "database"))


@pytest.mark.redis
def test_rate_limit_across_processes_on_redis():
    _check(_run("sqlite://", "redis", os.environ["TEST_REDIS_URL"]))
