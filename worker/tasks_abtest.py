"""A/B tests: beat evaluates tests whose wait is over and sends the winner to the held rest."""

from __future__ import annotations

import logging

from sqlalchemy.exc import OperationalError

from core import abtest, clock
from core.db import session_scope
from worker.celery_app import app

log = logging.getLogger(__name__)


def _release(campaign_id: int) -> int:
    """Release the held rest and queue its batches in one transaction (all or nothing)."""
    with session_scope() as session:
        released = abtest.release_rest(session, campaign_id)
        if released:
            from core.sending import dispatch_batches  # the sending area provides it

            dispatch_batches(session, campaign_id)
        return released


@app.task(name="worker.tasks_abtest.evaluate_ab_tests")
def evaluate_ab_tests() -> dict[str, int]:
    """Beat: decide every due test, then release the rest of every test with a winner."""
    with session_scope() as session:
        due = abtest.due_ab_tests(session, clock.now())
    decided = 0
    for campaign_id in due:
        try:
            with session_scope() as session:
                decision = abtest.evaluate_ab_test(session, campaign_id, clock.now())
        except Exception:
            # One broken campaign must not stop the others; beat tries it again next time.
            log.exception("A/B campaign %s: evaluation failed", campaign_id)
            continue
        if decision is not None:
            decided += 1
            log.info("A/B campaign %s: %s", campaign_id, decision.get("reason"))
    # A sweep rather than a chained task: a crash between deciding and releasing is
    # repaired on the next beat.
    with session_scope() as session:
        pending = abtest.pending_releases(session)
    released = sum(_release(campaign_id) for campaign_id in pending)
    return {"due": len(due), "decided": decided, "released": released}


@app.task(
    name="worker.tasks_abtest.release_ab_rest",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def release_ab_rest(campaign_id: int) -> int:
    """After a manual pick: send the winner to the held rest (safe to run twice)."""
    return _release(campaign_id)
