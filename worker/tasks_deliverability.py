"""Deliverability guard tasks (issue 19): the mail about an automatic pause."""

from __future__ import annotations

from core.deliverability import send_pause_notices
from core.infra.db import session_scope
from worker.celery_app import app


@app.task(
    name="worker.tasks_deliverability.notify_guard_pause",
    acks_late=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=5,
    soft_time_limit=120,
    time_limit=150,
)
def notify_guard_pause(campaign_id: int) -> int:
    """Mails the owners and admins that the guard paused a campaign (once)."""
    with session_scope() as session:
        return send_pause_notices(session, campaign_id)
