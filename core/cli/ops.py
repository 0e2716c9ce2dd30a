"""run-prod: the production processes under honcho (Procfile.prod), after checking the
settings can serve several processes and applying the migrations."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from core.infra.config import settings
from core.infra.jobs import QUEUES, consumed_queues

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = ("sqla+", "filesystem", "memory", "db+sqlite")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "run-prod",
        help="check the settings, migrate, and run Procfile.prod under honcho (make run-prod)",
    )
    p.add_argument("--check", action="store_true", help="only check the settings")
    p.set_defaults(func=cmd_run_prod)


def production_problems() -> list[str]:
    """What in the settings keeps production mode from starting, one sentence each."""
    problems = []
    if settings.is_sqlite:
        problems.append(
            "DATABASE_URL is SQLite: production mode needs PostgreSQL "
            "(DATABASE_URL=postgresql+psycopg://user:password@host/dbname)."
        )
    if settings.broker_url.startswith(EMBEDDED):
        problems.append(
            f"BROKER_URL is the embedded broker ({settings.broker_url.split(':', 1)[0]}): "
            "production mode needs Redis or RabbitMQ (BROKER_URL=redis://host:6379/0)."
        )
    if settings.result_backend.startswith(EMBEDDED):
        problems.append(
            "RESULT_BACKEND is a SQLite file: set it to Redis (RESULT_BACKEND=redis://host:6379/1)."
        )
    try:
        general = set(worker_queues().split(","))
    except ValueError as exc:
        return [*problems, f"{exc}."]
    served = general | ({"events"} if settings.events_workers else set())
    missing = [name for name in QUEUES if name not in served]
    if missing:
        problems.append(
            f"No worker would consume {', '.join(missing)}: add them to WORKER_QUEUES "
            "(or leave it empty)."
        )
    return problems


def worker_queues() -> str:
    """The queues of Procfile.prod's `worker` line: WORKER_QUEUES, or else every queue but
    `events` when EVENTS_WORKERS dedicated workers take that one."""
    if settings.worker_queues.strip():
        return ",".join(consumed_queues(settings.worker_queues))
    dedicated = {"events"} if settings.events_workers else set()
    return ",".join(name for name in QUEUES if name not in dedicated)


def metrics_dir() -> Path:
    """Prometheus multiprocess files, emptied at each start (as prometheus-client asks):
    one folder for the public service's processes, one for the workers'."""
    folder = (settings.data_dir / "metrics").resolve()
    for name in ("public", "worker"):
        shutil.rmtree(folder / name, ignore_errors=True)
        (folder / name).mkdir(parents=True)
    return folder


def process_env() -> dict[str, str]:
    """The environment of Procfile.prod's commands: the settings its lines name."""
    env = dict(os.environ)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # each line sets its own
    env.update(
        {
            "BIND_HOST": settings.bind_host,
            "APP_PORT": str(settings.app_port),
            "PUBLIC_PORT": str(settings.public_port),
            "WEB_CONCURRENCY": str(settings.web_concurrency),
            "WORKER_QUEUES": worker_queues(),
            "METRICS_DIR": str(metrics_dir()),
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def honcho_argv() -> list[str]:
    honcho = str(Path(sys.executable).parent / "honcho")
    return [
        honcho,
        "start",
        "--no-colour",
        "-f",
        str(ROOT / "Procfile.prod"),
        "-d",
        str(ROOT),
        "-c",
        f"web=1,public=1,worker={settings.worker_processes},"
        f"events={settings.events_workers},beat=1",
    ]


def cmd_run_prod(args: argparse.Namespace) -> int:
    problems = production_problems()
    if problems:
        for line in problems:
            sys.stderr.write(f"error: {line}\n")
        sys.stderr.write("error: refusing to start production mode (make run is the laptop mode)\n")
        return 2
    if args.check:
        return 0
    from core.infra.migrate import migrate

    migrate()
    sys.stdout.flush()
    # honcho replaces this process: a supervisor's signal reaches it, and it stops the rest.
    argv = honcho_argv()
    os.execve(argv[0], argv, process_env())
    return 0  # not reached
