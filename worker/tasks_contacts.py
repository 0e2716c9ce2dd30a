"""Contacts tasks: large imports run here, with progress on their Job row."""

from __future__ import annotations

from core.importer import run_import_job
from worker.celery_app import app


@app.task(name="worker.tasks_contacts.import_contacts", acks_late=True)
def import_contacts(job_id: int) -> str:
    """Import the file of Job `job_id`; a finished job is left alone."""
    return run_import_job(job_id)
