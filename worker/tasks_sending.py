"""Sending tasks: start a campaign, send one batch, and beat's tick. Thin over core.sending.pipeline."""

from __future__ import annotations

from celery.signals import worker_ready

from core.infra.config import settings
from core.infra.db import get_sessionmaker
from core.sending import pipeline as sending
from worker.celery_app import app


@app.task(name="worker.tasks_sending.start_campaign")
def start_campaign(campaign_id: int) -> bool:
    """Snapshot the audience and fan out batches (a no-op unless the campaign is due)."""
    return sending.start_campaign(get_sessionmaker(), campaign_id)


# A batch hands over after SEND_BATCH_SECONDS; the margin covers its last chunk's back-offs.
@app.task(
    name="worker.tasks_sending.send_batch",
    soft_time_limit=settings.send_batch_seconds + 300,
    time_limit=settings.send_batch_seconds + 360,
)
def send_batch(campaign_id: int, first_id: int, last_id: int) -> dict:
    """Send the pending messages of one id range; safe to run twice (claims are atomic)."""
    result = sending.send_batch(get_sessionmaker(), campaign_id, first_id, last_id)
    return {"sent": result.sent, "failed": result.failed, "stopped": result.stopped}


@app.task(name="worker.tasks_sending.tick")
def tick() -> dict:
    """Start due scheduled campaigns; recover what lost workers held."""
    return sending.tick(get_sessionmaker())


@worker_ready.connect
def _recover_at_start(sender=None, **_kwargs) -> None:
    # A restarted worker looks for campaigns a dead one left behind without waiting for beat.
    tick.apply_async(countdown=1)
