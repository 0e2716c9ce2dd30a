"""Tasks: each takes ids, re-reads rows, calls one `core` function, and is safe to repeat."""

from __future__ import annotations

from worker.celery_app import app


@app.task(name="worker.tasks.ping")
def ping() -> str:
    """Answers "pong": lets health checks and tests see a live worker."""
    return "pong"
