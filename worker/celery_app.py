"""The Celery application: broker settings from core.infra.jobs, tasks from worker/tasks*.py."""

from __future__ import annotations

import pkgutil

from celery import Celery

import worker
from core.infra.config import settings
from core.infra.jobs import celery_config
from worker import quiet

TASK_MODULES = sorted(
    f"worker.{m.name}" for m in pkgutil.iter_modules(worker.__path__) if m.name.startswith("tasks")
)

app = Celery("mailwright", include=TASK_MODULES)
quiet.install()
app.conf.update(celery_config())
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
