"""Asking for background work: tasks are sent by name once the caller's transaction commits.

`core` never imports `worker/`; this module holds the Celery client and the broker
settings the worker shares, so both sides agree on the wire.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from celery import Celery
from kombu import Queue
from kombu.transport import sqlalchemy as kombu_sqla
from sqlalchemy import event
from sqlalchemy.orm import Session

from core.infra.config import settings

# kombu's SQLAlchemy transport passes transport options to create_engine, so its
# polling interval can only be set on the class.
kombu_sqla.Transport.polling_interval = 0.1

Dispatcher = Callable[[str, tuple, dict], None]
TASK_SOFT_TIME_LIMIT = 600
_client: Celery | None = None
_client_lock = threading.Lock()
_dispatcher: Dispatcher | None = None


# Queues (issue 20): a long send never waits behind a rollup, and the SNS inbox drain never
# waits behind a send or an import. A worker started without WORKER_QUEUES (make run, the
# tests) consumes them all; production can give each its own workers. "celery" (Celery's
# default) keeps the rest: pings, password resets, signup confirmation and welcome mails.
QUEUES = ("sending", "events", "imports", "maintenance", "celery")
TASK_QUEUES = {
    # Mail that goes through the ledger and the shared rate limit.
    "worker.tasks_sending.start_campaign": "sending",
    "worker.tasks_sending.send_batch": "sending",
    "worker.tasks_sending.tick": "sending",
    "worker.tasks_abtest.release_ab_rest": "sending",
    # Automations' beat pass sends its steps' mails itself (rate shared with campaigns).
    "worker.tasks_automations.advance": "sending",
    # The webhook's inbox of SNS notifications.
    "worker.tasks.make_sns_events": "events",
    # The public service's signup inbox: people wait for their confirmation mail.
    "worker.tasks_forms.drain_signups": "events",
    "worker.tasks_contacts.import_contacts": "imports",
    "worker.tasks_contacts.recover_import_jobs": "imports",
    # Sweeps and rebuilds nobody waits for.
    "worker.tasks_analytics.build_rollups": "maintenance",
    "worker.tasks_analytics.rebuild_rollups": "maintenance",
    "worker.tasks_abtest.evaluate_ab_tests": "maintenance",
    "worker.tasks.sweep_files": "maintenance",
    "worker.tasks_forms.sweep_unconfirmed": "maintenance",
    "worker.tasks_sunset.recompute": "maintenance",
}


def queue_of(task_name: str) -> str:
    """The queue a task is sent to."""
    return TASK_QUEUES.get(task_name, "celery")


def consumed_queues(setting: str) -> list[str]:
    """The queues a worker consumes: WORKER_QUEUES (comma-separated), or all when empty."""
    names = [name.strip() for name in setting.split(",") if name.strip()]
    unknown = sorted(set(names) - set(QUEUES))
    if unknown:
        raise ValueError(f"WORKER_QUEUES names unknown queues: {', '.join(unknown)}")
    return names or list(QUEUES)


def celery_config() -> dict[str, Any]:
    """Broker and behaviour settings used by the client here and by the worker."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        "broker_connection_retry_on_startup": True,
        "result_expires": 3600,
        # Nobody reads what tasks return (progress lives on Job rows): store nothing unless
        # a task asks (ping does). And no task runs unbounded: a soft limit raises inside
        # the task, the hard one kills its process. Long tasks set their own.
        "task_ignore_result": True,
        "task_soft_time_limit": TASK_SOFT_TIME_LIMIT,
        "task_time_limit": TASK_SOFT_TIME_LIMIT + 60,
        "task_default_queue": "celery",
        "task_routes": {name: {"queue": queue} for name, queue in TASK_QUEUES.items()},
        "task_queues": [Queue(name, routing_key=name) for name in QUEUES],
    }
    if settings.broker_url.startswith("filesystem"):
        folder = settings.data_dir / "broker"
        for sub in ("in", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        config["broker_transport_options"] = {
            "data_folder_in": str(folder / "in"),
            "data_folder_out": str(folder / "in"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
        }
    return config


def client() -> Celery:
    global _client
    with _client_lock:
        if _client is None:
            app = Celery("mailwright")
            app.conf.update(celery_config())
            _client = app
        return _client


def set_dispatcher(dispatcher: Dispatcher | None) -> None:
    """Replace how tasks leave (tests record them); None restores Celery."""
    global _dispatcher
    _dispatcher = dispatcher


def _dispatch(name: str, args: tuple, kwargs: dict) -> None:
    if _dispatcher is not None:
        _dispatcher(name, args, kwargs)
    else:
        client().send_task(name, args=args, kwargs=kwargs)


def enqueue(session: Session | None, name: str, *args: Any, **kwargs: Any) -> None:
    """Send task `name` after `session` commits (at once when there is no session).

    Enqueueing inside the transaction would let a fast worker look for rows that are not
    committed yet; a rollback drops the task with the work it was for.
    """
    if session is None:
        _dispatch(name, args, kwargs)
        return
    session.info.setdefault(_PENDING, []).append((name, args, kwargs))


_PENDING = "mailwright_pending_jobs"


@event.listens_for(Session, "after_commit")
def _send_pending(session: Session) -> None:
    for name, args, kwargs in session.info.pop(_PENDING, []):
        _dispatch(name, args, kwargs)


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction) -> None:
    if previous_transaction.parent is None:
        session.info.pop(_PENDING, None)
