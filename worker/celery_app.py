"""The Celery application: broker settings from core.jobs, tasks from worker.tasks."""

from __future__ import annotations

from celery import Celery

from core.config import settings
from core.jobs import celery_config

app = Celery("mailwright", include=["worker.tasks"])
app.conf.update(celery_config())
app.conf.beat_schedule_filename = str(settings.data_dir / "celerybeat-schedule")
# Each periodic job is added next to the task it runs (worker/tasks.py).
app.conf.beat_schedule = {}
