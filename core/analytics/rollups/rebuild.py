"""Rebuilding the rollups on request: the Data page's "Rebuild now" queues one job for the
worker (a Job row of kind "rollups"), and the page follows the progress the task writes on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from core.analytics.rollups.build import BUILD_STEPS, build_rollups
from core.infra import clock
from core.infra.clock import as_utc
from core.infra.jobs import enqueue
from core.infra.permissions import Actor
from core.models import Job, Workspace
from core.models.statuses import JobStatus

KIND = "rollups"
TASK = "worker.tasks_analytics.rebuild_rollups"
# The task's hard time limit: a job that has not moved for longer lost its worker.
STALE_AFTER = timedelta(seconds=3660)


@dataclass
class RebuildStatus:
    """The workspace's latest requested rebuild."""

    job_id: int
    status: str
    step: int
    steps: int
    stage: str
    error: str
    requested_at: datetime
    updated_at: datetime

    @property
    def active(self) -> bool:
        """Queued or running (and not abandoned by a lost worker)."""
        return self.status in (JobStatus.PENDING, JobStatus.RUNNING) and (
            clock.now() - self.updated_at < STALE_AFTER
        )

    @property
    def fraction(self) -> float:
        return min(self.step / self.steps, 1.0) if self.steps else 0.0

    @property
    def text(self) -> str:
        if self.status == JobStatus.PENDING:
            return "Queued: waiting for the worker to start the rebuild…"
        if not self.step:
            return f"Rebuilding: {self.stage}…"
        return f"Rebuilding: {self.stage} (step {self.step} of {self.steps})…"


def _status(job: Job) -> RebuildStatus:
    return RebuildStatus(
        job.id,
        job.status,
        int(job.progress or 0),
        int(job.total or 0),
        str((job.result or {}).get("stage", "")),
        job.error or "",
        as_utc(job.created_at),
        as_utc(job.updated_at),
    )


def rebuild_status(session: Session, actor: Actor) -> RebuildStatus | None:
    """The latest rebuild this workspace asked for, or None."""
    actor.require("read")
    job = session.scalar(
        select(Job)
        .where(Job.workspace_id == actor.workspace_id, Job.kind == KIND)
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(1)
    )
    return None if job is None else _status(job)


def request_rebuild(session: Session, actor: Actor) -> tuple[RebuildStatus, bool]:
    """Queue a rebuild for the worker, unless one is already queued or running for this
    workspace: (its status, whether this call queued it). Editors and up."""
    actor.require("edit")
    # Two clicks at once must see each other: lock the workspace row (PostgreSQL; SQLite's
    # write transaction already runs one at a time).
    session.execute(
        select(Workspace.id).where(Workspace.id == actor.workspace_id).with_for_update()
    )
    latest = rebuild_status(session, actor)
    if latest is not None and latest.active:
        return latest, False
    job = Job(
        workspace_id=actor.workspace_id,
        kind=KIND,
        status=JobStatus.PENDING,
        total=BUILD_STEPS,
        result={"stage": "queued"},
        created_by_id=actor.user_id,
    )
    session.add(job)
    session.flush()
    enqueue(session, TASK, job.id)
    return _status(job), True


def run_rebuild(maker: sessionmaker[Session], job_id: int) -> str:
    """The worker's part: rebuild (after any rebuild already running), writing each step on
    the job. Takes a session factory: progress commits as it goes. A finished job is left
    alone, so a redelivered task does nothing."""
    with maker.begin() as session:
        job = session.get(Job, job_id)
        if job is None or job.status not in (JobStatus.PENDING, JobStatus.RUNNING):
            return "skipped"
        job.status = JobStatus.RUNNING
        job.result = {"stage": "starting"}

    def write(**values: object) -> None:
        with maker.begin() as session:
            session.execute(
                update(Job).where(Job.id == job_id).values(updated_at=clock.now(), **values)
            )

    def progress(step: int, steps: int, stage: str) -> None:
        write(progress=step, total=steps, result={"stage": stage})

    try:
        built = build_rollups(wait=True, progress=progress)
    except Exception as exc:
        write(status=JobStatus.FAILED, error=str(exc)[:2000] or type(exc).__name__)
        raise
    write(
        status=JobStatus.DONE,
        progress=BUILD_STEPS,
        result={
            "stage": "done",
            "built_at": built.built_at.isoformat(),
            "events_read": built.events_read,
            "seconds": built.seconds,
        },
    )
    return "done"
