"""Tasks nobody waits on store no result: make-sns-events alone ran 86,400 times a day,
each leaving a row in the result backend (issue 14)."""

from __future__ import annotations

from worker.celery_app import app

app.loader.import_default_modules()  # the worker imports its task modules at start

UNREAD = [
    "worker.tasks.make_sns_events",
    "worker.tasks.sweep_files",
    "worker.tasks_sending.tick",
    "worker.tasks_sending.start_campaign",
    "worker.tasks_sending.send_batch",
    "worker.tasks_analytics.build_rollups",
]


def test_periodic_and_sending_tasks_store_no_result():
    stored = [name for name in UNREAD if not app.tasks[name].ignore_result]
    assert not stored, f"these tasks write a result nobody reads: {stored}"
    # Those bounded in time have a soft limit (the drain re-reads its inbox next second).
    assert app.tasks["worker.tasks.make_sns_events"].soft_time_limit
