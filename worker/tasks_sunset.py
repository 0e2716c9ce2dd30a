"""The sunset policy's daily recompute (core.contacts.sunset)."""

from __future__ import annotations

from core.contacts.sunset import recompute_all
from core.infra.db import get_sessionmaker
from worker.celery_app import app


@app.task(name="worker.tasks_sunset.recompute", soft_time_limit=1800, time_limit=1860)
def recompute() -> dict[int, int]:
    """Mark inactive contacts in every workspace, one transaction each; safe to repeat."""
    return recompute_all(get_sessionmaker())
