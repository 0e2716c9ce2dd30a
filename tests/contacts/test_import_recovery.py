"""An import whose task the broker lost, or whose worker died, does not stay pending or
running forever: beat queues it again, then fails it (issue 14)."""

from __future__ import annotations

from datetime import timedelta

from core.contacts.importing import IMPORT_TASK, JOB_KIND, MAX_REQUEUES, recover_import_jobs
from core.infra import clock
from core.infra.db import session_scope
from core.models import Job
from tests.helpers import make_workspace


def _job(status: str) -> int:
    with session_scope() as session:
        ws = make_workspace(session)
        job = Job(workspace_id=ws.id, kind=JOB_KIND, status=status, params={"path": "x.csv"})
        session.add(job)
        session.flush()
        return job.id


def _sweep() -> dict[str, int]:
    with session_scope() as session:
        return recover_import_jobs(session)


def test_a_lost_pending_job_is_queued_again_then_failed(live_db, enqueued):
    clock.freeze(clock.now())
    pending, running = _job("pending"), _job("running")
    assert _sweep() == {"requeued": 0, "failed": 0}, "fresh jobs are left alone"
    clock.advance(timedelta(minutes=11))
    assert _sweep() == {"requeued": 1, "failed": 0}, "only the pending one is stale yet"
    assert [(name, args) for name, args, _ in enqueued] == [(IMPORT_TASK, (pending,))]
    clock.advance(timedelta(minutes=5))
    assert _sweep() == {"requeued": 1, "failed": 0}, "the silent running one now"
    assert enqueued[-1][1] == (running,)
    for _ in range(MAX_REQUEUES):
        clock.advance(timedelta(minutes=16))
        _sweep()
    with session_scope() as session:
        for job_id in (pending, running):
            job = session.get(Job, job_id)
            assert job.status == "failed" and "No worker finished" in job.error
