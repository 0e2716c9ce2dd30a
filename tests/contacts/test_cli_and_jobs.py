"""The import-contacts command and the background import job (a real worker process too)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from core.contacts.importing import (
    MAX_WORKERS,
    PARALLEL_MIN_ROWS,
    ImportOptions,
    import_jobs,
    run_import_job,
    start_import_job,
)
from core.contacts.lists import find_list
from core.infra import jobs
from core.infra.config import settings
from core.infra.db import get_sessionmaker, session_scope
from core.infra.permissions import Actor
from core.models import Contact, Job, Workspace
from tests.apptest_db import seed_user
from tests.processes import PROCESS_BACKEND, process_env, start_worker, wait_until
from tests.test_cli import run_cli


def _file(tmp_path, rows: int = 3):
    lines = ["Email Address,First Name,Tier"]
    lines += [f"P{i}@Example.com,P{i},{'gold' if i % 2 else 'silver'}" for i in range(rows)]
    lines += ["nope,Bad,gold"]
    path = tmp_path / "people.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _workspace_actor() -> Actor:
    with session_scope() as session:
        ws = session.scalar(select(Workspace).where(Workspace.slug == "acme"))
        return Actor(workspace_id=ws.id, role="owner")


# A process boundary: one backend (PostgreSQL when TEST_DATABASE_URL is set); the SQL
# behind it runs on both in this package's in-process tests.
@pytest.mark.parametrize("backend", [PROCESS_BACKEND])
def test_cli_imports_prints_summary_and_fails_cleanly(live_db, tmp_path):
    seed_user()
    path = _file(tmp_path)
    done = run_cli(
        tmp_path,
        live_db,
        "import-contacts",
        str(path),
        "--workspace",
        "acme",
        "--list",
        "Fair 2026",
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert {k: summary[k] for k in ("created", "updated", "skipped", "invalid")} == {
        "created": 3,
        "updated": 0,
        "skipped": 0,
        "invalid": 1,
    }
    assert "nope" in Path(summary["errors_file"]).read_text()
    path.write_text("email,first name\np0@example.com,Changed\n")
    again = run_cli(
        tmp_path, live_db, "import-contacts", str(path), "--workspace", "acme", "--update-existing"
    )
    assert json.loads(again.stdout.splitlines()[-1])["updated"] == 1
    actor = _workspace_actor()
    with session_scope() as session:
        contact = session.scalar(select(Contact).where(Contact.email == "p0@example.com"))
        assert contact.first_name == "Changed" and contact.custom_fields == {"tier": "silver"}
        assert find_list(session, actor, "Fair 2026") is not None

    bad = tmp_path / "bad.csv"
    bad.write_text("name,city\nA,B\n")
    failed = run_cli(tmp_path, live_db, "import-contacts", str(bad), "--workspace", "acme")
    assert failed.returncode != 0 and "email" in failed.stderr
    missing = run_cli(tmp_path, live_db, "import-contacts", str(path), "--workspace", "nope")
    assert missing.returncode != 0 and "nope" in missing.stderr


def test_job_runs_once_and_records_progress(live_db, tmp_path, enqueued):
    seed_user()
    actor = _workspace_actor()
    with session_scope() as session:
        job = start_import_job(session, actor, _file(tmp_path, 40), ImportOptions(), 41)
        job_id = job.id
        assert enqueued == []  # sent only after commit
    assert enqueued == [("worker.tasks_contacts.import_contacts", (job_id,), {})]
    assert run_import_job(get_sessionmaker(), job_id) == "done"
    assert run_import_job(get_sessionmaker(), job_id) == "done"
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job.result["created"] == 40 and job.result["invalid"] == 1
        assert job.progress == 41
        assert [j.id for j in import_jobs(session, actor)] == [job_id]
        assert session.scalar(select(Contact.id).where(Contact.email == "p39@example.com"))


# A process boundary: one backend (PostgreSQL when TEST_DATABASE_URL is set); the SQL
# behind it runs on both in this package's in-process tests.
@pytest.mark.parametrize("backend", [PROCESS_BACKEND])
@pytest.mark.slow
@pytest.mark.parametrize("rows", [500, PARALLEL_MIN_ROWS])
def test_job_in_a_real_worker(live_db, tmp_path, monkeypatch, rows):
    # A big import checks its rows in worker processes, started from a Celery prefork
    # child (which multiprocessing sees as a daemon).
    seed_user()
    broker = f"sqla+sqlite:///{tmp_path / 'broker.db'}"
    results = f"db+sqlite:///{tmp_path / 'results.db'}"
    monkeypatch.setattr(settings, "broker_url", broker)
    monkeypatch.setattr(settings, "result_backend", results)
    monkeypatch.setattr(jobs, "_client", None)
    jobs.set_dispatcher(None)
    worker = start_worker(process_env(tmp_path, live_db), tmp_path / "worker.log")
    try:
        actor = _workspace_actor()
        with session_scope() as session:
            path = _file(tmp_path, rows)
            job_id = start_import_job(session, actor, path, ImportOptions(), rows + 1).id

        def finished() -> bool:
            with session_scope() as session:
                return session.get(Job, job_id).status in ("done", "failed")

        wait_until(finished, 180, "the import job")
        with session_scope() as session:
            job = session.get(Job, job_id)
            assert job.status == "done", (job.error, worker.log())
            assert job.result["created"] == rows and job.result["invalid"] == 1
            cores = os.cpu_count() or 1
            parallel = rows >= PARALLEL_MIN_ROWS and cores > 1
            assert job.result["workers"] == (min(cores, MAX_WORKERS) if parallel else 0)
    finally:
        worker.stop()
        monkeypatch.setattr(jobs, "_client", None)
