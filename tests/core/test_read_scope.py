"""Reads do not take SQLite's write lock: a page holding a read transaction does not
delay the worker's writes (issue 14)."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import select, text

from core.infra.db import read_scope, session_scope
from core.models import Workspace
from tests.helpers import make_workspace


def test_a_long_read_does_not_hold_up_a_write(live_db, backend):
    with session_scope() as session:
        make_workspace(session, "acme")
    with read_scope() as reading:
        reading.scalars(select(Workspace)).all()  # the read transaction is open now
        if backend == "sqlite":
            path = live_db.split("///", 1)[1]
            writer = sqlite3.connect(path, timeout=0.5, isolation_level=None)
            try:
                # A writer that would wait at most half a second for the write lock.
                writer.execute("BEGIN IMMEDIATE")
                writer.execute("UPDATE workspace SET name = 'Acme 2'")
                writer.execute("COMMIT")
            finally:
                writer.close()
        else:
            with session_scope() as session:
                session.execute(text("UPDATE workspace SET name = 'Acme 2'"))


def test_a_read_scope_refuses_to_write(live_db):
    with pytest.raises(RuntimeError, match="for reading"), read_scope() as session:
        session.add(Workspace(slug="nope", name="Nope"))
        session.flush()
