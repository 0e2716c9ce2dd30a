"""The worker's log is not buried under the every-second sweeps (make run's terminal)."""

from __future__ import annotations

import logging

from worker.celery_app import app  # noqa: F401  (installs the filter)


def test_sweeps_info_lines_are_dropped_and_everything_else_kept(caplog):
    trace = logging.getLogger("celery.app.trace")
    beat = logging.getLogger("celery.beat")
    with caplog.at_level(logging.INFO):
        trace.info(
            "Task %s[%s] succeeded in %ss: %s", "worker.tasks.make_sns_events", "1", 0.001, 0
        )
        beat.info(
            "Scheduler: Sending due task %s (%s)", "sending-tick", "worker.tasks_sending.tick"
        )
        trace.info("Task %s[%s] succeeded in %ss: %s", "worker.tasks_sending.send_batch", "2", 1, 0)
        trace.error("Task %s[%s] raised: boom", "worker.tasks.make_sns_events", "3")
    shown = [r.getMessage() for r in caplog.records]
    assert shown == [
        "Task worker.tasks_sending.send_batch[2] succeeded in 1s: 0",
        "Task worker.tasks.make_sns_events[3] raised: boom",
    ]
