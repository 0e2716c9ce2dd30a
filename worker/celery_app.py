"""The Celery application: broker settings from core.infra.jobs, tasks from worker/tasks*.py."""

from __future__ import annotations

import logging
import pkgutil

from celery import Celery
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    task_postrun,
    task_prerun,
    worker_ready,
)
from kombu import Queue

import worker
from core.infra import logs
from core.infra.config import settings
from core.infra.jobs import celery_config, consumed_queues
from worker import quiet

TASK_MODULES = sorted(
    f"worker.{m.name}" for m in pkgutil.iter_modules(worker.__path__) if m.name.startswith("tasks")
)

app = Celery("mailwright", include=TASK_MODULES)
quiet.install()
app.conf.update(celery_config())
# WORKER_QUEUES: the queues this worker consumes (all when unset; core.infra.jobs.QUEUES).
app.conf.task_queues = [
    Queue(name, routing_key=name) for name in consumed_queues(settings.worker_queues)
]
app.conf.beat_schedule_filename = str(settings.data_dir / "celerybeat-schedule")
# Periodic work, by task name. Each area adds its entry here.
app.conf.beat_schedule = {}
app.conf.beat_schedule["sending-tick"] = {
    "task": "worker.tasks_sending.tick",
    "schedule": settings.send_tick_seconds,
}
# Automations (issue 18): enroll, exit, advance what is due; as often as campaigns' tick.
app.conf.beat_schedule["automations-advance"] = {
    "task": "worker.tasks_automations.advance",
    "schedule": settings.send_tick_seconds,
    "options": {"expires": settings.send_tick_seconds * 2},
}
app.conf.beat_schedule["analytics-rollups"] = {
    "task": "worker.tasks_analytics.build_rollups",
    "schedule": float(settings.rollup_interval_seconds),
    "options": {"expires": float(settings.rollup_interval_seconds)},
}
app.conf.beat_schedule["evaluate-ab-tests"] = {
    "task": "worker.tasks_abtest.evaluate_ab_tests",
    "schedule": settings.ab_tick_seconds,
}
# The webhook stores SES notifications; their events are made here, off its request path.
app.conf.beat_schedule["make-sns-events"] = {
    "task": "worker.tasks.make_sns_events",
    "schedule": settings.sns_drain_seconds,
    "options": {"expires": settings.sns_drain_seconds},
}
# The sunset policy (issue 19): inactive contacts, once a day, one UPDATE per workspace.
app.conf.beat_schedule["sunset-recompute"] = {
    "task": "worker.tasks_sunset.recompute",
    "schedule": 86400.0,
    "options": {"expires": 3600.0},
}
app.conf.beat_schedule["recover-import-jobs"] = {
    "task": "worker.tasks_contacts.recover_import_jobs",
    "schedule": 60.0,
    "options": {"expires": 60.0},
}
# Signup forms: the public service accepts posts into an inbox; they are subscribed here.
app.conf.beat_schedule["drain-signups"] = {
    "task": "worker.tasks_forms.drain_signups",
    "schedule": settings.signup_drain_seconds,
    "options": {"expires": settings.signup_drain_seconds},
}
# Signup forms: unconfirmed contacts past their retention go, with their consent attempts.
app.conf.beat_schedule["sweep-unconfirmed"] = {
    "task": "worker.tasks_forms.sweep_unconfirmed",
    "schedule": 3600.0,
    "options": {"expires": 3600.0},
}
app.conf.beat_schedule["sweep-files"] = {
    "task": "worker.tasks.sweep_files",
    "schedule": 3600.0,
}


# Logs (core.infra.logs): Celery sets up its handlers; they get the email redaction, and the
# JSON formatter with LOG_FORMAT=json. Each task's lines carry its task_id.
@after_setup_logger.connect
@after_setup_task_logger.connect
def _adopt_handlers(logger: logging.Logger, **_kwargs) -> None:
    logs.adopt(logger)


_bound: dict[str, logs.Tokens] = {}


@task_prerun.connect
def _bind_task_id(task_id: str, **_kwargs) -> None:
    _bound[task_id] = logs.bind(task_id=task_id)


@task_postrun.connect
def _unbind_task_id(task_id: str, **_kwargs) -> None:
    tokens = _bound.pop(task_id, None)
    if tokens is not None:
        logs.unbind(tokens)


@worker_ready.connect
def _serve_metrics(sender=None, **_kwargs) -> None:
    # METRICS_PORT: Prometheus scrapes the worker's counters (its pool's, in multiprocess
    # mode, which python -m worker sets up).
    if settings.metrics_port:
        from core.infra import metrics

        metrics.serve(settings.metrics_port)
