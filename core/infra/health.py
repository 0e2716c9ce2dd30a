"""Readiness checks for `GET /readyz` and `make run-prod`: the database answers, the broker
answers, and the database's schema is the one this code expects (migrations at head).

Each check blocks (a driver call): the public service runs them in its threadpool, each
under READY_TIMEOUT_SECONDS. A check raises NotReady with a reason anyone may read; other
exceptions carry details (host, user) that go to the log only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from alembic.script import ScriptDirectory
from kombu import Connection
from sqlalchemy import text

from core.infra.config import settings
from core.infra.db import get_engine
from core.infra.migrate import alembic_config


class NotReady(Exception):
    """A dependency answers but is not in the state this code needs."""


def check_database() -> None:
    with get_engine().connect() as conn:
        conn.execute(text("SELECT 1"))


def check_broker(timeout: float | None = None) -> None:
    """Open a connection to BROKER_URL (Redis: a PING) and close it."""
    timeout = timeout or settings.ready_timeout_seconds
    options = {}
    if settings.broker_url.startswith(("redis", "rediss")):
        # Only for Redis: kombu's SQLAlchemy transport passes its options to create_engine.
        options = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    with Connection(
        settings.broker_url, connect_timeout=timeout, transport_options=options
    ) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
        conn.default_channel  # noqa: B018 - Redis pings when the channel opens


@functools.cache
def expected_heads() -> frozenset[str]:
    """The head revisions of the migrations shipped with this code (read once)."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def check_migrations() -> None:
    # Read alembic_version directly: MigrationContext logs two INFO lines per call.
    with get_engine().connect() as conn:
        current = frozenset(conn.scalars(text("SELECT version_num FROM alembic_version")))
    expected = expected_heads()
    if current != expected:
        at = ", ".join(sorted(current)) or "none"
        raise NotReady(
            f"migrations not at head: database at {at}, code expects {', '.join(sorted(expected))}"
        )


CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "broker": check_broker,
    "migrations": check_migrations,
}
