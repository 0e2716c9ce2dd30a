"""Three processes writing to one SQLite file at once: none sees "database is locked"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.infra.db import create_db_engine
from core.models import AuditLog, Workspace

WRITES = 150
ROOT = Path(__file__).resolve().parents[2]

# Each writer is a fresh interpreter (not multiprocessing's spawn, which re-imports
# whatever `__main__` is at the time: after an AppTest run, that is the app script).
WRITER = """
import sys
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from core.infra.db import create_db_engine
from core.models import AuditLog

url, workspace_id, name, writes = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
engine = create_db_engine(url)
for i in range(writes):
    with Session(engine) as session, session.begin():
        # Read then write inside one transaction: the pattern that deadlocks without
        # BEGIN IMMEDIATE and a busy timeout.
        session.scalar(select(func.count()).select_from(AuditLog))
        session.add(AuditLog(workspace_id=workspace_id, action=name, target=str(i)))
engine.dispose()
"""


def test_three_processes_write_at_once(databases):
    url = databases.fresh("sqlite")
    engine = create_db_engine(url)
    with Session(engine) as session, session.begin():
        ws = Workspace(slug="conc", name="Concurrency")
        session.add(ws)
        session.flush()
        ws_id = ws.id
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, str(ws_id), name, str(WRITES)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("app", "worker", "hook")
    ]
    errors = [p.communicate(timeout=180)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(AuditLog)) == 3 * WRITES
    engine.dispose()
