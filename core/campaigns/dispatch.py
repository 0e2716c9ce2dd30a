"""Queueing a campaign's batch tasks over its pending ledger rows.

Below sending (whose worker tasks send the batches) so campaign actions (resume, retry)
and the A/B release can queue batches without importing the pipeline.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.infra import jobs
from core.infra.config import settings
from core.models import Message
from core.models.statuses import PENDING

BATCH_TASK = "worker.tasks_sending.send_batch"


def dispatch_batches(session: Session, campaign_id: int) -> int:
    """Queue batch tasks over the campaign's queued (and uncertain) messages.

    The tasks leave when the caller commits. Held (A/B) messages are left alone: move them
    to "queued" and call this again.
    """
    ids = session.scalars(
        select(Message.id)
        .where(Message.campaign_id == campaign_id, Message.status.in_(PENDING))
        .order_by(Message.id)
    ).all()
    size = max(1, settings.send_batch_size)
    batches = 0
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        jobs.enqueue(session, BATCH_TASK, campaign_id, chunk[0], chunk[-1])
        batches += 1
    return batches
