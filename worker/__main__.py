"""`python -m worker [celery worker options]` and `python -m worker beat [options]`.

A Celery worker set up from the settings, for Procfile.prod and the systemd units in
deploy/: pool size WORKER_CONCURRENCY, level LOG_LEVEL, a node name unique on its host
(several workers per host answer `celery inspect ping` one by one), the queues
WORKER_QUEUES names (applied in worker/celery_app.py), and with METRICS_PORT the
multiprocess metrics folder. `beat` runs the one scheduler.
Options given after these override them (Celery takes the last one).
"""

from __future__ import annotations

import os
import sys

from core.infra.config import settings


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
    if settings.metrics_port and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # The pool's processes count into files here; the one serving METRICS_PORT adds
        # them up. Before prometheus_client is imported (it reads this once). Workers of
        # one host share it (run-prod empties it at start).
        folder = settings.data_dir / "metrics" / "worker"
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder.resolve())
    from worker.celery_app import app

    return app.start(celery_argv(sys.argv[1:])) or 0


if __name__ == "__main__":
    sys.exit(main())
