"""A/B tests: beat evaluates tests whose wait is over and sends the winner to the held rest."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

from core import abtest
from core.infra.db import get_sessionmaker
from worker.celery_app import app


@app.task(name="worker.tasks_abtest.evaluate_ab_tests")
def evaluate_ab_tests() -> dict[str, int]:
    """Beat: decide every due test, then release the rest of every test with a winner."""
    return abtest.run_due_tests(get_sessionmaker())


@app.task(
    name="worker.tasks_abtest.release_ab_rest",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def release_ab_rest(campaign_id: int) -> int:
    """After a manual pick: send the winner to the held rest (safe to run twice)."""
    return abtest.release_and_dispatch(get_sessionmaker(), campaign_id)
