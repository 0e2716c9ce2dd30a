"""Automation tasks (issue 18): beat's pass. Thin over core.automations.engine."""

from __future__ import annotations

from core.automations import run_pass
from core.infra.config import settings
from core.infra.db import get_sessionmaker
from worker.celery_app import app


@app.task(
    name="worker.tasks_automations.advance",
    soft_time_limit=settings.send_batch_seconds + 300,
    time_limit=settings.send_batch_seconds + 360,
)
def advance(advance_only: bool = False) -> dict:
    """Enroll new list members, let unsubscribed contacts go, advance due enrollments
    (`advance_only`: only the last, for the helper pass a busy pass asks for).

    Safe to run twice or on several workers at once: enrollments are leased (SKIP LOCKED on
    PostgreSQL) and every send has its ledger row first."""
    result = run_pass(get_sessionmaker(), advance_only=advance_only)
    return {
        "enrolled": result.enrolled,
        "exited": result.exited,
        "claimed": result.claimed,
        "sent": result.sent,
        "failed": result.failed,
        "finished": result.finished,
    }
