"""Engines and sessions: one per process and database URL."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Engine, Result, String, create_engine, event, func
from sqlalchemy.engine import make_url
from sqlalchemy.orm import QueryableAttribute, Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from core.infra.config import settings

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_makers: dict[str, sessionmaker[Session]] = {}


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets the app, the worker and the webhook write side by side; the busy
    # timeout makes a writer wait for the lock instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # PostgreSQL gets the same function from migration 0014. str.casefold itself, not a
    # Python wrapper: a wrapper costs 2.5x per row; fold() never passes it a NULL.
    dbapi_connection.create_function(CASEFOLD, 1, str.casefold, deterministic=True)


CASEFOLD = "mw_casefold"


def fold(expr: ColumnElement[str] | QueryableAttribute[str] | str) -> ColumnElement[str]:
    """`expr` case-folded in SQL the way Python's `str.casefold` folds it, on both databases.

    Compare case-insensitively as `fold(a) == fold(b)` or `fold(a).like(fold(pattern))`.
    A NULL folds to '' (callers that care about missing values test them separately)."""
    return getattr(func, CASEFOLD)(func.coalesce(expr, ""), type_=String)


def rowcount(result: Result[*tuple[Any, ...]]) -> int:
    """How many rows the UPDATE or DELETE that produced `result` matched.

    Session.execute() is typed as returning a plain Result, but for DML it returns a
    CursorResult, which is what carries rowcount."""
    return cast("CursorResult[*tuple[Any, ...]]", result).rowcount


_Row = TypeVar("_Row")


def referenced(session: Session, model: type[_Row], key: Any) -> _Row:
    """The row a foreign key points at (a campaign's workspace, a token's user).

    It exists by the schema's rules, so a miss means a broken database, not a user error:
    it raises LookupError instead of returning None."""
    row = session.get(model, key)
    if row is None:
        raise LookupError(f"{model.__name__} {key!r} is missing, though a foreign key names it")
    return row


def like_escape(text: str) -> str:
    """`text` as a literal inside a LIKE pattern written with `escape="\\\\"`."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


READ_ONLY = "mailwright_read_only"


def _sqlite_begin(conn) -> None:
    # BEGIN IMMEDIATE takes the write lock up front, so two writers queue on the busy
    # timeout instead of deadlocking when a reader upgrades to a writer. A transaction
    # that only reads (read_scope) begins deferred: under WAL it never takes the write
    # lock, so a slow page does not hold up the worker's and the webhook's writes.
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def create_db_engine(url: str) -> Engine:
    """A new engine for `url` with the pragmas and pool settings we rely on."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_pre_ping=True,
        )
        event.listen(engine, "connect", _sqlite_pragmas)

        @event.listens_for(engine, "connect")
        def _no_pysqlite_begin(dbapi_connection, _record) -> None:
            dbapi_connection.isolation_level = None

        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def get_engine(url: str | None = None) -> Engine:
    """The process-wide engine for `url` (default: settings.database_url)."""
    url = url or settings.database_url
    with _lock:
        if url not in _engines:
            _engines[url] = create_db_engine(url)
            _makers[url] = sessionmaker(_engines[url], expire_on_commit=False)
        return _engines[url]


def get_sessionmaker(url: str | None = None) -> sessionmaker[Session]:
    url = url or settings.database_url
    get_engine(url)
    return _makers[url]


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """One transaction: commit on success, roll back on error."""
    with get_sessionmaker(url).begin() as session:
        yield session


@contextmanager
def read_scope(url: str | None = None) -> Iterator[Session]:
    """A transaction that only reads: no write lock on SQLite; a flush raises.

    Use it for pages and checks that read; anything that may write uses session_scope."""
    engine = get_engine(url).execution_options(**{READ_ONLY: True})
    with Session(engine, expire_on_commit=False, autoflush=False) as session:
        session.info[READ_ONLY] = True
        yield session
        # Ending it with a commit (nothing to write) keeps what was loaded usable after
        # the block, as with session_scope; a rollback would expire it.
        session.commit()


@event.listens_for(Session, "before_flush")
def _no_writes_in_read_scope(session: Session, _context, _instances) -> None:
    if session.info.get(READ_ONLY) and (session.new or session.dirty or session.deleted):
        raise RuntimeError("read_scope() is for reading: write in a session_scope() instead")


_lock_fds: dict[tuple[int, str], int] = {}


@contextmanager
def sqlite_writer_lock(engine: Engine) -> Iterator[None]:
    """On SQLite, queue this writer behind the others that take this lock (a file lock
    beside the database); elsewhere nothing.

    SQLite's own busy handler polls with sleeps of up to 100 ms, so a writer that finds
    the database locked often sleeps long after the lock came free; `flock` wakes the
    next writer the moment the previous one commits. The webhook's group commit and the
    signup drain take it; other writers (the app, other tasks) still meet on SQLite's
    lock as before. One descriptor per thread: flock is held per open file."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    path = f"{database}.webhook-lock"
    key = (threading.get_ident(), path)
    fd = _lock_fds.get(key)
    if fd is None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        _lock_fds[key] = fd
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def dispose_all() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _makers.clear()
