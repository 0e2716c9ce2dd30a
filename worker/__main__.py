"""`python -m worker [celery worker options]` and `python -m worker beat [options]`.

A Celery worker set up from the settings, for Procfile.prod and the systemd units in
deploy/: pool size WORKER_CONCURRENCY, level LOG_LEVEL, a node name unique on its host
(several workers per host answer `celery inspect ping` one by one), and the queues
WORKER_QUEUES names (applied in worker/celery_app.py). `beat` runs the one scheduler.
Options given after these override them (Celery takes the last one).
"""

from __future__ import annotations

import os
import sys

from core.infra.config import settings
from worker.celery_app import app


def celery_argv(argv: list[str]) -> list[str]:
    if argv[:1] == ["beat"]:
        return ["beat", "--loglevel", settings.log_level, *argv[1:]]
    return [
        "worker",
        "--loglevel",
        settings.log_level,
        "--concurrency",
        str(settings.worker_concurrency),
        "--hostname",
        f"worker{os.getpid()}@%h",
        *argv,
    ]


def main() -> int:
    return app.start(celery_argv(sys.argv[1:])) or 0


if __name__ == "__main__":
    sys.exit(main())
