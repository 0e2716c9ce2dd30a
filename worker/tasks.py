"""Tasks: each takes ids, re-reads rows, calls one `core` function, and is safe to repeat."""

from __future__ import annotations

from worker.celery_app import app


@app.task(name="worker.tasks.ping", ignore_result=False)
def ping() -> str:
    """Answers "pong": lets health checks and tests see a live worker."""
    return "pong"


@app.task(name="worker.tasks.sweep_files", soft_time_limit=900, time_limit=960)
def sweep_files() -> int:
    """Deletes uploads, import error reports and exports past FILE_RETENTION_DAYS, and
    signed-out sessions whose cookies have expired anyway."""
    from core.accounts.auth import sweep_revoked_sessions
    from core.infra.db import session_scope
    from core.infra.retention import sweep_files as sweep

    with session_scope() as session:
        sweep_revoked_sessions(session)
    return len(sweep())


@app.task(name="worker.tasks.make_sns_events", soft_time_limit=300, time_limit=360)
def make_sns_events() -> int:
    """Makes the events of the SES notifications the webhook has stored (its inbox)."""
    from core.infra.db import get_sessionmaker
    from core.ingest.inbox import drain_sns_backlog

    return drain_sns_backlog(get_sessionmaker())


@app.task(name="worker.tasks.password_reset", soft_time_limit=60, time_limit=90)
def password_reset(email: str) -> None:
    """Mails a reset link if `email` has an account (capped per address; silent otherwise).

    Queued by the Forgot password page, so its answer takes the same time whether or not
    the address has an account."""
    from core.accounts.auth import request_password_reset
    from core.infra.db import session_scope

    with session_scope() as session:
        request_password_reset(session, email)
