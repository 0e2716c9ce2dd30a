"""Group commit: many concurrent requests share one database transaction.

Each request awaits its own outcome, so a 200 still means "stored". While one batch is
being written (in a thread, off the event loop), the next requests queue up and go
together in the following transaction: under load, batches grow by themselves and the
per-commit cost (fsync on SQLite, a round trip on PostgreSQL) is paid once per batch.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from sqlalchemy import Connection

from core.infra.config import settings
from core.infra.db import get_engine, sqlite_writer_lock

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class GroupCommitter(Generic[T, R]):
    """Feeds submitted items to `handler(items) -> outcomes` in batches of up to `max_batch`.

    `handler` runs in a worker thread and must do its whole batch in one transaction. If a
    batch fails, its items are retried one by one, so one bad item fails alone."""

    def __init__(
        self,
        handler: Callable[[Sequence[T]], list[R]],
        max_batch: int = 500,
        writers: int = 1,
    ) -> None:
        self.handler = handler
        self.max_batch = max_batch
        self.writers = writers
        # Our own threads (not the default pool): each writer keeps its connection.
        self._executor = ThreadPoolExecutor(writers, thread_name_prefix="group-commit")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.batches = 0
        self.items = 0

    def _ensure_started(self) -> asyncio.Queue[tuple[T, asyncio.Future[R]]]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._queue is None:
            # A new event loop (a test client, a reloaded worker): start afresh on it.
            self._loop = loop
            self._queue = asyncio.Queue()
            self._tasks = [loop.create_task(self._run(self._queue)) for _ in range(self.writers)]
        return self._queue

    async def submit(self, item: T) -> R:
        queue = self._ensure_started()
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        queue.put_nowait((item, future))
        return await future

    async def _run(self, queue: asyncio.Queue[tuple[T, asyncio.Future[R]]]) -> None:
        while True:
            batch = [await queue.get()]
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            await self._write(batch)

    async def _call(self, items: list[T]) -> list[R]:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.handler, items)

    async def _write(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        items = [item for item, _ in batch]
        try:
            outcomes = await self._call(items)
        except Exception:
            log.exception("group of %d failed; retrying one by one", len(items))
            for item, future in batch:
                try:
                    outcome = (await self._call([item]))[0]
                except Exception as exc:
                    if not future.done():
                        future.set_exception(exc)
                else:
                    if not future.done():
                        future.set_result(outcome)
            return
        self.batches += 1
        self.items += len(items)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)


_local = threading.local()


def connection() -> Connection:
    """This thread's own database connection, kept between batches.

    Checking one out of the pool for each batch costs a ping round trip on PostgreSQL;
    a kept connection is replaced only after it failed (see `transaction`)."""
    url = settings.database_url
    conn: Connection | None = getattr(_local, "conn", None)
    if conn is None or conn.closed or getattr(_local, "url", None) != url:
        if conn is not None:
            conn.close()
        conn = get_engine(url).connect()
        _local.conn, _local.url = conn, url
    return conn


def run_in_transaction(work: Callable[[Connection], R]) -> R:
    """`work(connection)` in one transaction on this thread's kept connection.

    A Core connection, not an ORM session: the batch is Core statements only, and a
    session's transaction bookkeeping costs more per batch than the commit itself."""
    conn = connection()
    try:
        with sqlite_writer_lock(conn.engine), conn.begin():
            return work(conn)
    except Exception:
        # The connection may be broken: start the next batch on a new one.
        _local.conn = None
        conn.invalidate()
        raise
