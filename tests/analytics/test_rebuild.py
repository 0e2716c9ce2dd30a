"""Rebuild now: one job queued per workspace however often it is clicked, the worker's
progress on it, and the rollups it builds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from core.analytics import rollups
from core.infra import clock
from core.infra.db import get_sessionmaker, read_scope, session_scope
from core.infra.errors import PermissionDenied
from core.infra.permissions import Actor
from core.models import Job
from tests.analytics.dataset import build_known
from tests.helpers import make_workspace


@pytest.fixture
def rollup_file(tmp_path, monkeypatch):
    from core.infra.config import settings

    path = tmp_path / "rollups.duckdb"
    monkeypatch.setattr(settings, "rollup_path", path)
    return path


@pytest.fixture
def owner(live_db):
    with session_scope() as session:
        ws = make_workspace(session).id
        build_known(session, ws)
    return Actor(workspace_id=ws, role="editor", user_id=None, email="ed@example.com")


def request(actor: Actor) -> tuple[rollups.RebuildStatus, bool]:
    with session_scope() as session:
        return rollups.request_rebuild(session, actor)


def status(actor: Actor) -> rollups.RebuildStatus | None:
    with read_scope() as session:
        return rollups.rebuild_status(session, actor)


def test_a_second_click_while_one_is_queued_or_running_queues_nothing(owner, rollup_file, enqueued):
    first, created = request(owner)
    assert created and first.active and first.status == "pending"
    assert enqueued == [(rollups.rebuild.TASK, (first.job_id,), {})]
    again, created = request(owner)
    assert not created and again.job_id == first.job_id
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == first.job_id).values(status="running"))
    _, created = request(owner)
    assert not created and len(enqueued) == 1

    viewer = Actor(workspace_id=owner.workspace_id, role="viewer", user_id=None, email="v@x.org")
    with pytest.raises(PermissionDenied):
        request(viewer)
    assert status(viewer).job_id == first.job_id  # a viewer may watch

    # A job whose worker was lost (no progress for longer than the task may run) does not
    # block the button for ever.
    clock.advance(rollups.rebuild.STALE_AFTER + timedelta(minutes=1))
    later, created = request(owner)
    assert created and later.job_id != first.job_id and len(enqueued) == 2


def test_the_task_builds_the_rollups_and_writes_its_progress(owner, rollup_file, enqueued):
    job, _ = request(owner)
    seen: list[tuple[int, int, str]] = []
    original = rollups.rebuild.build_rollups

    def watched(**kwargs):
        report = kwargs.pop("progress")

        def both(step: int, steps: int, stage: str) -> None:
            report(step, steps, stage)
            now = status(owner)  # what the page sees at this moment
            seen.append((now.step, now.steps, now.stage))

        return original(progress=both, **kwargs)

    from worker.tasks_analytics import rebuild_rollups

    assert rebuild_rollups.name == rollups.rebuild.TASK  # what the page queues
    rollups.rebuild.build_rollups = watched
    try:
        assert rebuild_rollups.run(job.job_id) == "done"
    finally:
        rollups.rebuild.build_rollups = original
    assert rollup_file.exists()
    steps = [s for s, _, _ in seen]
    assert steps == sorted(steps) and steps[-1] == rollups.BUILD_STEPS
    assert {"reading new events", "adding up", "writing the file"} <= {x for _, _, x in seen}
    done = status(owner)
    assert done.status == "done" and not done.active and done.fraction == 1.0
    with read_scope() as session:
        result = session.scalar(select(Job.result).where(Job.id == job.job_id))
    assert result["built_at"] == rollups.rollup_status()["built_at"].isoformat()

    # Delivered twice (acks_late): the second run does nothing.
    assert rollups.run_rebuild(get_sessionmaker(), job.job_id) == "skipped"
    # Done: the button queues a new one.
    _, created = request(owner)
    assert created


def test_a_failed_rebuild_says_why(owner, rollup_file, monkeypatch):
    job, _ = request(owner)

    def broken(**kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(rollups.rebuild, "build_rollups", broken)
    with pytest.raises(OSError):
        rollups.run_rebuild(get_sessionmaker(), job.job_id)
    failed = status(owner)
    assert failed.status == "failed" and not failed.active
    assert "No space left" in failed.error
