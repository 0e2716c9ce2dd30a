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

DEFAULT_QUEUE, EVENTS_QUEUE = "celery", "events"
Dispatcher = Callable[[str, tuple, dict], None]
TASK_SOFT_TIME_LIMIT = 600
_client: Celery | None = None
_client_lock = threading.Lock()
_dispatcher: Dispatcher | None = None


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
        # The SNS drain (and with it the deliverability guard) has a queue of its own: a
        # worker started without -Q takes both, and one started with `-Q events` (the
        # Procfile's `events`) keeps making events, and pausing campaigns that burn the
        # account, while sending batches hold every process of the main pool.
        "task_queues": (Queue(DEFAULT_QUEUE), Queue(EVENTS_QUEUE)),
        "task_default_queue": DEFAULT_QUEUE,
        "task_routes": {"worker.tasks.make_sns_events": {"queue": EVENTS_QUEUE}},
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
