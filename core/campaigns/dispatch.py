"""Queueing a campaign's batch tasks over its pending ledger rows that are due.

Below sending (whose worker tasks send the batches) so campaign actions (resume, retry)
and the A/B release can queue batches without importing the pipeline.

A row is due when it has no `due_at` (a campaign sent at once) or its time-zone wave's
moment has come (core.campaigns.waves); rows of later waves stay queued until beat's tick
queues them (`dispatch_due_waves`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session

from core.infra import clock, jobs
from core.infra.config import settings
from core.models import Campaign, Message
from core.models.statuses import PENDING, MessageStatus

BATCH_TASK = "worker.tasks_sending.send_batch"


def is_due(now: datetime) -> ColumnElement[bool]:
    """The row may be sent at `now`: no wave, or its wave's moment has come."""
    return or_(Message.due_at.is_(None), Message.due_at <= now)


def _waves(session: Session, campaign_id: int) -> bool:
    return bool(session.scalar(select(Campaign.local_send_time).where(Campaign.id == campaign_id)))


def dispatch_batches(session: Session, campaign_id: int, since: datetime | None = None) -> int:
    """Queue batch tasks over the campaign's queued (and uncertain) messages that are due
    (with `since`: only those whose wave fell due after it).

    The tasks leave when the caller commits. Held (A/B) messages are left alone: move them
    to "queued" and call this again.
    """
    now = clock.now()
    query = select(Message.id).where(Message.campaign_id == campaign_id)
    if _waves(session, campaign_id):
        # Every row of a time-zone campaign has its due time: the partial index
        # ix_message_campaign_status_due reads only the rows of the waves that are due.
        query = query.where(Message.status.in_(PENDING), Message.due_at <= now)
        if since is not None:
            query = query.where(Message.due_at > since)
        session.execute(
            update(Campaign).where(Campaign.id == campaign_id).values(waves_dispatched_at=now)
        )
    else:
        query = query.where(Message.status.in_(PENDING))
    # Each batch is the id range of `size` consecutive rows. The database numbers the rows
    # and hands back one (first, last) pair per batch: a million-row ledger is 2,000 pairs
    # here, not a million ids held in the worker (which took 290 MB at a million).
    size = max(1, settings.send_batch_size)
    numbered = query.add_columns(
        # Integer division on both databases ("//" would be FLOOR(), which SQLite may lack).
        (func.row_number().over(order_by=Message.id) - 1).self_group().op("/")(size).label("batch")
    ).subquery()
    ranges = session.execute(
        select(func.min(numbered.c.id), func.max(numbered.c.id))
        .group_by(numbered.c.batch)
        .order_by(numbered.c.batch)
    ).all()
    for first, last in ranges:
        jobs.enqueue(session, BATCH_TASK, campaign_id, first, last)
    return len(ranges)


def dispatch_due_waves(session: Session, campaign_id: int) -> int:
    """Queue the waves of a sending time-zone campaign that fell due since the last
    dispatch; the number of batches (0: no wave fell due). Beat's tick calls it."""
    since = clock.as_utc(
        session.scalar(select(Campaign.waves_dispatched_at).where(Campaign.id == campaign_id))
    )
    nearest = clock.as_utc(next_wave(session, campaign_id, MessageStatus.QUEUED, since))
    if nearest is None or nearest > clock.now():
        return 0
    return dispatch_batches(session, campaign_id, since=since)


def next_wave(
    session: Session, campaign_id: int, status: str, after: datetime | None = None
) -> datetime | None:
    """The earliest due time of the campaign's rows in `status` (after `after`).

    A min() over ix_message_campaign_status_due is one index probe whatever the ledger's
    size. "Any row with due_at <= now LIMIT 1" reads the same but lets PostgreSQL's planner
    pick a sequential scan (it cannot know that the rows due by now are mostly sent): a
    million-row ledger then costs 0.2 s per tick between waves."""
    query = select(func.min(Message.due_at)).where(
        Message.campaign_id == campaign_id,
        Message.status == status,
        Message.due_at.is_not(None),  # the partial index's condition, for SQLite's planner
    )
    if after is not None:
        query = query.where(Message.due_at > after)
    return session.scalar(query)
