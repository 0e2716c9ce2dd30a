"""Contacts tasks: large imports run here, with progress on their Job row."""

from __future__ import annotations

from core.contacts.importing import recover_import_jobs, run_import_job
from core.infra.db import get_sessionmaker, session_scope
from worker.celery_app import app


# A million-row .xlsx takes minutes; past the soft limit the job fails with its reason.
@app.task(
    name="worker.tasks_contacts.import_contacts",
    acks_late=True,
    soft_time_limit=3 * 3600,
    time_limit=3 * 3600 + 60,
)
def import_contacts(job_id: int) -> str:
    """Import the file of Job `job_id`; a finished job is left alone."""
    return run_import_job(get_sessionmaker(), job_id)


@app.task(name="worker.tasks_contacts.recover_import_jobs")
def recover_imports() -> dict[str, int]:
    """Queue again the imports whose task was lost or whose worker died."""
    with session_scope() as session:
        return recover_import_jobs(session)
