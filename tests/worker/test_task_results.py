"""Every task is bounded in time and stores no result nobody reads: make-sns-events alone
ran 86,400 times a day, each leaving a row in the result backend (issue 14)."""

from __future__ import annotations

from core.infra import jobs
from worker.celery_app import app

app.loader.import_default_modules()  # the worker imports its task modules at start
OURS = sorted(name for name in app.tasks if name.startswith("worker."))


def _limits(name: str) -> tuple[float | None, float | None]:
    task = app.tasks[name]
    soft = task.soft_time_limit or app.conf.task_soft_time_limit
    hard = task.time_limit or app.conf.task_time_limit
    return soft, hard


def test_every_task_has_a_soft_and_a_hard_time_limit():
    assert len(OURS) >= 12, OURS
    unbounded = [n for n in OURS if None in _limits(n) or not _limits(n)[0] < _limits(n)[1]]
    assert not unbounded, f"these tasks could run for ever: {unbounded}"
    assert _limits("worker.tasks.make_sns_events")[0] <= 300  # re-reads its inbox next second
    assert _limits("worker.tasks.ping")[1] == jobs.TASK_SOFT_TIME_LIMIT + 60


def test_only_ping_stores_a_result():
    stored = [n for n in OURS if not app.tasks[n].ignore_result]
    assert stored == ["worker.tasks.ping"]
