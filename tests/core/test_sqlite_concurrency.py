"""Three processes writing to one SQLite file at once: none sees "database is locked"."""

from __future__ import annotations

import multiprocessing as mp

from sqlalchemy import func, select

from core.db import create_db_engine
from core.models import AuditLog, Workspace

WRITES = 150


def _writer(url: str, workspace_id: int, name: str) -> None:
    from sqlalchemy.orm import Session

    engine = create_db_engine(url)
    for i in range(WRITES):
        with Session(engine) as session, session.begin():
            # Read then write inside one transaction: the pattern that deadlocks without
            # BEGIN IMMEDIATE and a busy timeout.
            session.scalar(select(func.count()).select_from(AuditLog))
            session.add(AuditLog(workspace_id=workspace_id, action=name, target=str(i)))
    engine.dispose()


def test_three_processes_write_at_once(databases):
    url = databases.fresh("sqlite")
    engine = create_db_engine(url)
    from sqlalchemy.orm import Session

    with Session(engine) as session, session.begin():
        ws = Workspace(slug="conc", name="Concurrency")
        session.add(ws)
        session.flush()
        ws_id = ws.id
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(url, ws_id, n)) for n in ("app", "worker", "hook")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(AuditLog)) == 3 * WRITES
    engine.dispose()
