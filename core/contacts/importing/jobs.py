"""Background imports: uploads kept for the worker, the Job row the page follows, the task
that runs it, and beat's recovery of jobs whose task was lost."""

from __future__ import annotations

import logging
import re
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.infra.clock import now
from core.infra.config import settings
from core.infra.errors import MailwrightError, NotFound
from core.infra.jobs import enqueue
from core.infra.permissions import Actor
from core.models import Job
from core.models.statuses import JobStatus

if TYPE_CHECKING:
    pass  # what csv.writer() returns


from core.contacts.importing.read import UnreadableFile, open_table
from core.contacts.importing.write import ImportOptions, import_contacts

log = logging.getLogger(__name__)

# --- background imports ----------------------------------------------------------------------

JOB_KIND = "contacts_import"
IMPORT_TASK = "worker.tasks_contacts.import_contacts"


def upload_dir() -> Path:
    folder = settings.data_dir / "imports" / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_upload(name: str, data: bytes) -> Path:
    """Keep an uploaded file where the worker can read it; refuse one over MAX_UPLOAD_MB."""
    if len(data) > settings.max_upload_mb * 1024 * 1024:
        raise UnreadableFile(
            f"The file is {len(data) / 1024 / 1024:,.0f} MB; uploads are limited to "
            f"{settings.max_upload_mb:,.0f} MB (MAX_UPLOAD_MB)."
        )
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name)[-80:] or "upload.csv"
    path = upload_dir() / f"{uuid.uuid4().hex[:12]}-{safe}"
    path.write_bytes(data)
    return path


def start_import_job(
    session: Session, actor: Actor, path: str | Path, options: ImportOptions, estimated_rows: int
) -> Job:
    """Queue the import for the worker (after the caller commits); returns the job to follow."""
    actor.require("edit")
    open_table(path, options.sheet).close()  # unreadable files fail here, not in the worker
    job = Job(
        workspace_id=actor.workspace_id,
        kind=JOB_KIND,
        status=JobStatus.PENDING,
        total=estimated_rows,
        params={"path": str(path), "options": options.to_dict(), "role": actor.role},
        created_by_id=actor.user_id,
    )
    session.add(job)
    session.flush()
    enqueue(session, IMPORT_TASK, job.id)
    return job


def import_jobs(session: Session, actor: Actor, limit: int = 5) -> list[Job]:
    """The workspace's latest import jobs, newest first."""
    actor.require("read")
    return list(
        session.scalars(
            select(Job)
            .where(Job.workspace_id == actor.workspace_id, Job.kind == JOB_KIND)
            .order_by(Job.created_at.desc(), Job.id.desc())
            .limit(limit)
        )
    )


def run_import_job(sessions: sessionmaker[Session], job_id: int) -> str:
    """Run a queued import (the worker task). Safe to repeat: a finished job is left alone,
    and running an import again merges into the contacts it created. It runs its own
    transactions (the job's bookkeeping apart from the import's), so it takes a session
    factory."""
    with sessions.begin() as session:
        job = session.get(Job, job_id)
        if job is None or job.kind != JOB_KIND:
            return "missing"
        if job.status in (JobStatus.DONE, JobStatus.FAILED):
            return job.status
        job.status = JobStatus.RUNNING
        params = dict(job.params)
        actor = Actor(
            workspace_id=job.workspace_id,
            role=params.get("role", "editor"),
            user_id=job.created_by_id,
        )
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.monotonic() - last[0] < 1.0:
            return
        last[0] = time.monotonic()
        with sessions.begin() as s:
            s.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(progress=done, total=total, updated_at=now())
            )

    options = ImportOptions.from_dict(params["options"])
    try:
        result = import_contacts(sessions, actor, params["path"], options, progress=progress)
    except MailwrightError as exc:
        _finish_job(sessions, job_id, "failed", error=str(exc))
        return "failed"
    except Exception as exc:
        _finish_job(sessions, job_id, "failed", error=f"The import stopped unexpectedly: {exc}")
        raise
    _finish_job(sessions, job_id, "done", result=result.to_dict(), progress=result.rows)
    return "done"


# A pending job no worker took, or a running one that stopped reporting progress (the
# worker reports every second), is handed out again; after MAX_REQUEUES it fails.
STALE_PENDING = timedelta(minutes=10)
STALE_RUNNING = timedelta(minutes=15)
MAX_REQUEUES = 3


def recover_import_jobs(session: Session) -> dict[str, int]:
    """Beat's sweep: queue again the imports a lost task or a dead worker left behind.

    Safe because an import is idempotent (running it again merges into what it created)."""
    current = now()
    stale = session.scalars(
        select(Job).where(
            Job.kind == JOB_KIND,
            or_(
                (Job.status == JobStatus.PENDING) & (Job.updated_at < current - STALE_PENDING),
                (Job.status == JobStatus.RUNNING) & (Job.updated_at < current - STALE_RUNNING),
            ),
        )
    ).all()
    stats = {"requeued": 0, "failed": 0}
    for job in stale:
        tries = int(job.params.get("requeued", 0))
        if tries >= MAX_REQUEUES:
            job.status = JobStatus.FAILED
            job.error = (
                f"No worker finished this import after {tries + 1} tries; "
                "check that a worker is running, then import the file again."
            )
            stats["failed"] += 1
            continue
        job.params = {**job.params, "requeued": tries + 1}
        job.status = JobStatus.PENDING
        job.updated_at = current
        enqueue(session, IMPORT_TASK, job.id)
        stats["requeued"] += 1
    return stats


def _finish_job(sessions: sessionmaker[Session], job_id: int, status: str, **values: Any) -> None:
    with sessions.begin() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise NotFound(f"Import job {job_id} no longer exists.")
        job.status = status
        for key, value in values.items():
            setattr(job, key, value)
        if "progress" in values:
            job.total = max(job.total, values["progress"])
