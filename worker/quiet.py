"""Keep the worker's log readable: the sweeps beat runs every second or few (the SNS drain,
the sending tick, the A/B check) would otherwise log three INFO lines each per run
("Sending due task", "received", "succeeded"), burying everything else. Their warnings
and errors, and every line of every other task, are kept."""

from __future__ import annotations

import logging

QUIET_TASKS = (
    "worker.tasks.make_sns_events",
    "worker.tasks_sending.tick",
    "worker.tasks_abtest.evaluate_ab_tests",
)
# Where Celery logs those three lines.
LOGGERS = ("celery.beat", "celery.worker.strategy", "celery.app.trace")


class QuietSweeps(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        message = record.getMessage()
        return not any(task in message for task in QUIET_TASKS)


def install() -> None:
    quiet = QuietSweeps()
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuietSweeps) for f in logger.filters):
            logger.addFilter(quiet)
