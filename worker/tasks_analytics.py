"""Analytics tasks: the periodic DuckDB rollup rebuild, and one asked for on the Data page."""

from __future__ import annotations

import logging

from core.analytics.rollups import RollupBusy, build_rollups, run_rebuild
from core.infra import metrics
from core.infra.db import get_sessionmaker
from worker.celery_app import app

log = logging.getLogger(__name__)


# A full rebuild at 10M events takes minutes; a stuck one must not hold the lock for ever.
@app.task(name="worker.tasks_analytics.build_rollups", soft_time_limit=3600, time_limit=3660)
def build_rollups_task(full: bool = False) -> dict:
    """Rebuild the rollups; a rebuild already running makes this one a no-op."""
    try:
        result = build_rollups(full=full)
    except RollupBusy:
        log.info("rollup rebuild skipped: another one is running")
        return {"skipped": True}
    metrics.ROLLUP_SECONDS.set(result.seconds)
    return {"events_read": result.events_read, "seconds": result.seconds}


@app.task(
    name="worker.tasks_analytics.rebuild_rollups",
    acks_late=True,
    soft_time_limit=3600,
    time_limit=3660,
)
def rebuild_rollups(job_id: int) -> str:
    """The rebuild of Job `job_id` (Data page, "Rebuild now"), after any running one."""
    return run_rebuild(get_sessionmaker(), job_id)
