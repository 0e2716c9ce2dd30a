"""Tasks: each takes ids, re-reads rows, calls one `core` function, and is safe to repeat."""

from __future__ import annotations

from worker.celery_app import app


@app.task(name="worker.tasks.ping")
def ping() -> str:
    """Answers "pong": lets health checks and tests see a live worker."""
    return "pong"


@app.task(name="worker.tasks.sweep_files", ignore_result=True, soft_time_limit=900)
def sweep_files() -> int:
    """Deletes uploads, import error reports and exports past FILE_RETENTION_DAYS, and
    signed-out sessions whose cookies have expired anyway."""
    from core.auth import sweep_revoked_sessions
    from core.db import session_scope
    from core.retention import sweep_files as sweep

    with session_scope() as session:
        sweep_revoked_sessions(session)
    return len(sweep())


@app.task(name="worker.tasks.make_sns_events", ignore_result=True, soft_time_limit=300)
def make_sns_events() -> int:
    """Makes the events of the SES notifications the webhook has stored (its inbox)."""
    from core.events import drain_sns_backlog

    return drain_sns_backlog()
