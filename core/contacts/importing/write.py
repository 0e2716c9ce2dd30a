"""Writing an import: the plan (mapping, new fields, list), the chunked reader feeding a
process pool, in-file duplicates, and the writer thread that stages or copies each chunk
into `contact`, one transaction per chunk. The error report lists every rejected row."""

from __future__ import annotations

import csv
import dataclasses
import heapq
import logging
import multiprocessing
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from queue import Full, Queue
from typing import TYPE_CHECKING, Any, TextIO, cast

from sqlalchemy import String, text
from sqlalchemy.orm import Session

from core.contacts.fields import (
    check_key,
    create_custom_field,
    field_types,
    infer_type,
)
from core.contacts.lists import ensure_list, get_list
from core.infra import metrics
from core.infra.clock import now
from core.infra.config import settings
from core.infra.permissions import Actor
from core.models import Contact

if TYPE_CHECKING:
    from _csv import Writer as CsvWriter  # what csv.writer() returns


from core.contacts.importing.check import _Block, _check_block, _Checked, _Plan
from core.contacts.importing.mapping import STANDARD_TARGETS, guess_mapping
from core.contacts.importing.read import (
    CHUNK_ROWS,
    SAMPLE_ROWS,
    UnreadableFile,
    _parse_items,
    open_table,
)
from core.contacts.importing.stage import _STAGE_COLUMNS, _Stager

log = logging.getLogger(__name__)

# --- importing -------------------------------------------------------------------------------


@dataclass
class ImportOptions:
    """How to read the file and what to do with it.

    `mapping` maps column headers to "email", a standard field, "custom:KEY" or "" (skip);
    None uses the guesses, with unmapped columns as custom fields (`new_fields` overrides
    their label and type)."""

    mapping: dict[str, str] | None = None
    new_fields: dict[str, tuple[str, str]] = field(default_factory=dict)
    list_name: str | None = None
    list_id: int | None = None
    update_existing: bool = False
    sheet: str | None = None
    source: str = "import"
    file_name: str = ""  # as uploaded, for the consent record (else the path's name)
    # "Guess time zone from country": offered by the mapping step when a column is mapped to
    # the country and none to the time zone; off unless the person chooses it.
    guess_timezone: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "mapping": self.mapping,
            "new_fields": {k: list(v) for k, v in self.new_fields.items()},
            "list_name": self.list_name,
            "list_id": self.list_id,
            "update_existing": self.update_existing,
            "sheet": self.sheet,
            "source": self.source,
            "file_name": self.file_name,
            "guess_timezone": self.guess_timezone,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImportOptions:
        data = dict(data)
        data["new_fields"] = {k: tuple(v) for k, v in (data.get("new_fields") or {}).items()}
        return cls(**data)


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    skipped: int = 0  # existing contacts left unchanged, and in-file duplicates
    invalid: int = 0
    duplicates: int = 0
    rows: int = 0
    errors_file: str | None = None
    errors: list[tuple[int, str, str]] = field(default_factory=list)  # first 100
    new_fields: list[str] = field(default_factory=list)
    list_name: str | None = None
    seconds: float = 0.0
    workers: int = 0  # processes that checked the rows (0: this one)

    def summary(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "updated": self.updated,
            "skipped": self.skipped,
            "invalid": self.invalid,
            "errors_file": self.errors_file,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "duplicates": self.duplicates,
            "rows": self.rows,
            "errors": [list(e) for e in self.errors],
            "new_fields": self.new_fields,
            "list_name": self.list_name,
            "seconds": round(self.seconds, 3),
            "workers": self.workers,
        }


class _ErrorReport:
    """Rows not imported, streamed to a CSV file: line, email, reason, then the row."""

    def __init__(self, header: list[str]) -> None:
        self.header = header
        self.path: Path | None = None
        self._fh: TextIO | None = None
        self._writer: CsvWriter | None = None
        self.preview: list[tuple[int, str, str]] = []
        self._lock = threading.Lock()

    def add(self, line: int, email: str, reason: str, cells: list[str]) -> None:
        with self._lock:
            self._add(line, email, reason, cells)

    def _add(self, line: int, email: str, reason: str, cells: list[str]) -> None:
        if self._writer is None:
            folder = settings.data_dir / "imports"
            folder.mkdir(parents=True, exist_ok=True)
            self.path = (
                folder
                / f"import-errors-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}.csv"
            )
            self._fh = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115
            self._writer = csv.writer(self._fh)
            self._writer.writerow(["line", "email", "reason", *self.header])
        self._writer.writerow([line, email, reason, *cells])
        if len(self.preview) < 100:
            self.preview.append((line, email, reason))

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def _max_length(name: str) -> int:
    length = cast(String, Contact.__table__.c[name].type).length
    assert length is not None  # every standard text column of contact is a sized String
    return length


# Lengths of the contact's text columns (core/models/contacts.py).
MAX_LENGTHS = {name: _max_length(name) for name in STANDARD_TARGETS if name != "email"}


def _plan(
    session: Session, actor: Actor, header: list[str], options: ImportOptions, result: ImportResult
) -> _Plan:
    """Resolve the mapping to column indexes; create the custom fields it needs."""
    mapping = options.mapping
    new_fields = dict(options.new_fields)
    if mapping is None:
        mapping, existing = guess_mapping(header), field_types(session, actor)
        for column, target in mapping.items():
            key = target.removeprefix("custom:")
            if target.startswith("custom:") and key not in existing:
                new_fields.setdefault(key, (column, ""))
    unknown = [c for c in mapping if c not in header]
    if unknown:
        raise UnreadableFile(f"The file has no column {unknown[0]!r}.")
    emails = [c for c, t in mapping.items() if t == "email"]
    if len(emails) != 1:
        raise UnreadableFile(
            "Choose exactly one column for the email address"
            + (f" (the file's columns: {', '.join(header[:20])})." if not emails else ".")
        )
    targets = [t for t in mapping.values() if t]
    if len(targets) != len(set(targets)):
        raise UnreadableFile("Two columns are mapped to the same field.")
    types = field_types(session, actor)
    standard, custom = [], []
    for column, target in mapping.items():
        index = header.index(column)
        if not target or target == "email":
            continue
        if target in STANDARD_TARGETS:
            standard.append((index, _STAGE_COLUMNS.index(target), target, MAX_LENGTHS[target]))
        elif target.startswith("custom:"):
            key = check_key(target[len("custom:") :])
            if key not in types:
                label, type_ = new_fields.get(key, (column, ""))
                custom.append((index, key, type_ or ""))
            else:
                custom.append((index, key, types[key]))
        else:
            raise UnreadableFile(f"Unknown target field {target!r} for column {column!r}.")
    plan = _Plan(header.index(emails[0]), standard, custom)
    plan.zone_position = _STAGE_COLUMNS.index("timezone")
    countries = [c for c, t in mapping.items() if t == "country"]
    if options.guess_timezone and countries and "timezone" not in targets:
        plan.guess_zone_from = header.index(countries[0])
    return plan


def _create_new_fields(
    session: Session,
    actor: Actor,
    plan: _Plan,
    header: list[str],
    options: ImportOptions,
    sample: list[list[str]],
    result: ImportResult,
) -> None:
    types = field_types(session, actor)
    for position, (index, key, type_) in enumerate(plan.custom):
        if key in types:
            continue
        if not type_:
            type_ = infer_type([row[index] if index < len(row) else "" for row in sample])
        label = options.new_fields.get(key, (header[index], type_))[0] or header[index]
        create_custom_field(session, actor, key, label, type_)
        result.new_fields.append(key)
        plan.custom[position] = (index, key, type_)


ProgressFn = Callable[[int, int], None]

# Imports of at least this many rows check their rows in worker processes, one per core,
# while this process writes to the database; smaller ones are not worth starting them.
PARALLEL_MIN_ROWS = 100_000
MAX_WORKERS = 4


def import_contacts(
    sessions: Callable[[], Session],
    actor: Actor,
    path: str | Path,
    options: ImportOptions | None = None,
    progress: ProgressFn | None = None,
    chunk_rows: int = CHUNK_ROWS,
    workers: int | None = None,
) -> ImportResult:
    """Import a CSV or .xlsx file into the actor's workspace.

    Runs its own transactions, one commit per chunk (a million rows are never one
    transaction), so it takes a session factory (a `sessionmaker`, or any zero-argument
    callable returning a Session), not a session; what it wrote is committed when it
    returns. `workers` processes check the rows (None: one per core for big files, 0: none).
    Raises UnreadableFile, changing nothing, when the file cannot be read or mapped."""
    actor.require("edit")
    with sessions() as session:
        result = _import_contacts(session, actor, path, options, progress, chunk_rows, workers)
        session.commit()  # the list and fields of a file without a single row to write
    metrics.count_imported_rows(result.created, result.updated, result.skipped, result.invalid)
    return result


def _import_contacts(
    session: Session,
    actor: Actor,
    path: str | Path,
    options: ImportOptions | None,
    progress: ProgressFn | None,
    chunk_rows: int,
    workers: int | None,
) -> ImportResult:
    options = options or ImportOptions()
    started = time.perf_counter()
    result = ImportResult()
    source = open_table(path, options.sheet)
    report = _ErrorReport(source.header)
    pool = None
    try:
        plan = _plan(session, actor, source.header, options, result)
        items = source.records if source.records is not None else source.rows
        # Types of new fields are inferred from the first rows, read ahead.
        head: list[tuple[int, str | list[str]]] = []
        for item in items:
            head.append(item)
            if len(head) >= SAMPLE_ROWS:
                break
        sample = list(_parse_items([i for _, i in head], source.delimiter, source.nul))
        _create_new_fields(session, actor, plan, source.header, options, sample, result)
        del sample
        list_id = options.list_id
        if options.list_name:
            list_id = ensure_list(session, actor, options.list_name).id
        if list_id is not None:
            result.list_name = get_list(session, actor, list_id).name
        stager = _Stager(
            session,
            actor,
            options.update_existing,
            list_id,
            consent_detail=options.file_name or Path(path).name,
        )
        total = source.estimated_rows
        if workers is None:
            cores = os.cpu_count() or 1
            workers = min(cores, MAX_WORKERS) if cores > 1 and total >= PARALLEL_MIN_ROWS else 0
        pool = _start_pool(workers) if workers > 0 else None  # before the writer thread
        result.workers = workers if pool is not None else 0

        def all_items() -> Iterator[tuple[int, str | list[str]]]:
            yield from head
            yield from items

        template = _Block(
            lines=[],
            items=[],
            delimiter=source.delimiter,
            nul=source.nul,
            plan=plan,
            width=len(source.header),
            copy=stager.pg,
        )
        seen: dict[str, int] = {}
        writer = _ChunkWriter(session, stager, report, options)
        in_flight: deque[tuple[_Block, Any]] = deque()
        try:
            for lines, chunk in _chunks(all_items(), chunk_rows):
                block = dataclasses.replace(template, lines=lines, items=chunk)
                if pool is None:
                    _merge_block(block, _check_block(block), seen, report, result, writer)
                else:
                    in_flight.append((block, pool.submit(_check_block, block)))
                    # A few blocks ahead keep every worker busy and memory bounded.
                    while len(in_flight) > result.workers + 1:
                        done, pending = in_flight.popleft()
                        _merge_block(done, pending.result(), seen, report, result, writer)
                writer.report_progress(progress, total)
            while in_flight:
                done, pending = in_flight.popleft()
                _merge_block(done, pending.result(), seen, report, result, writer)
                writer.report_progress(progress, total)
        finally:
            writer.finish()
        writer.report_progress(progress, total)
        result.created += writer.created
        result.updated += writer.updated
        result.skipped += writer.skipped
        if result.created > 10_000 and not stager.pg:
            # SQLite plans with table statistics only once they exist; without them it reads
            # a million-row workspace through an index row by row. A sampled ANALYZE is cheap.
            session.execute(text("PRAGMA analysis_limit=1000"))
            session.execute(text("ANALYZE contact"))
            session.commit()
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        source.close()
        report.close()
    result.errors_file = str(report.path) if report.path else None
    result.errors = report.preview
    result.seconds = time.perf_counter() - started
    return result


def _start_pool(workers: int) -> ProcessPoolExecutor | None:
    """Worker processes that check blocks of rows, forked from this process; None (the rows
    are checked here) when other threads run.

    Forking is instant and safe while this is the only thread (the CLI, a Celery prefork
    child; the writer thread starts after). With other threads, a lock one of them holds
    would stay locked in the child; and spawn and the fork server re-run the `__main__`
    script in each child, which under Streamlit is the app itself."""
    if threading.active_count() > 1:
        return None
    context = multiprocessing.get_context("fork")
    current = multiprocessing.current_process()
    daemon = current.daemon
    try:
        # A Celery prefork child is marked as a daemon, which multiprocessing refuses to
        # start children from (they could outlive it). These exit with the import: the
        # pool is shut down in a finally, and a worker whose parent dies reads EOF.
        if daemon:
            current.daemon = False
        pool = ProcessPoolExecutor(workers, mp_context=context)
        # The first task forks every worker, now, before any thread of ours starts. (A
        # worker that dies breaks the pool, so the import fails instead of waiting forever.)
        pool.submit(int).result()
        return pool
    except OSError as exc:  # no processes to be had (limits, memory): check the rows here
        log.warning("Import checks its rows in this process: no worker processes (%s)", exc)
        return None
    finally:
        if daemon:
            current.daemon = True


def _chunks(
    items: Iterator[tuple[int, str | list[str]]], size: int
) -> Iterator[tuple[list[int], list[str | list[str]]]]:
    lines: list[int] = []
    chunk: list[str | list[str]] = []
    for line, item in items:
        lines.append(line)
        chunk.append(item)
        if len(chunk) >= size:
            yield lines, chunk
            lines, chunk = [], []
    if chunk:
        yield lines, chunk


def _merge_block(
    block: _Block,
    checked: _Checked,
    seen: dict[str, int],
    report: _ErrorReport,
    result: ImportResult,
    writer: _ChunkWriter,
) -> None:
    """Drop in-file duplicates (the first row wins), report rejected rows in line order,
    and hand the rest to the writer."""
    result.rows += checked.rows
    result.invalid += checked.invalid
    keep: list[int] = []
    duplicates: list[tuple[int, str, str, list[str]]] = []
    for position, (line, email) in enumerate(zip(checked.lines, checked.emails, strict=True)):
        first = seen.get(email)
        if first is None:
            seen[email] = line
            keep.append(position)
        else:
            duplicates.append(
                (line, email, f"duplicate of line {first} in this file; that row was used", [])
            )
    if duplicates:
        result.duplicates += len(duplicates)
        result.skipped += len(duplicates)
        duplicates = [(ln, e, why, block.cells(ln)) for ln, e, why, _ in duplicates]
        checked.lines = [checked.lines[p] for p in keep]
        checked.emails = [checked.emails[p] for p in keep]
        checked.data = [checked.data[p] for p in keep]
    for line, email, reason, cells in heapq.merge(checked.bad, duplicates):
        report.add(line, email, reason, cells)
    checked.bad = []
    writer.submit(block, checked, result.rows)


class _ChunkWriter:
    """Writes checked chunks on a second thread while the next chunks are checked.

    The database works (and the driver waits with the GIL released) while Python parses;
    at most two chunks wait here, so memory stays bounded. Only this thread touches the
    session once it runs. Progress is reported from the caller's thread (Streamlit widgets
    cannot be updated from another thread)."""

    def __init__(
        self,
        session: Session,
        stager: _Stager,
        report: _ErrorReport,
        options: ImportOptions,
    ) -> None:
        self.session = session
        self.stager = stager
        self.report = report
        self.options = options
        self.created = self.updated = self.skipped = 0
        self.done_rows = 0
        self._reported = 0
        self.error: BaseException | None = None
        self._queue: Queue = Queue(maxsize=1)
        self._thread = threading.Thread(target=self._run, name="import-writer", daemon=True)
        self._thread.start()

    def submit(self, block: _Block, checked: _Checked, rows: int) -> None:
        while True:
            self._raise_if_failed()
            try:
                self._queue.put((block, checked, rows), timeout=0.5)
                return
            except Full:
                continue

    def finish(self) -> None:
        if self._thread.is_alive():
            while self._thread.is_alive():
                try:
                    self._queue.put(None, timeout=0.5)
                    break
                except Full:
                    continue
            self._thread.join()
        self._raise_if_failed()

    def report_progress(self, progress: ProgressFn | None, total: int) -> None:
        done = self.done_rows
        if progress is not None and done and done != self._reported:
            self._reported = done
            progress(done, max(total, done))

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                block, checked, rows = item
                self._write(block, checked)
                self.session.commit()
                self.done_rows = rows
        except BaseException as exc:  # handed to the caller's thread
            self.error = exc
            self.session.rollback()

    def _write(self, block: _Block, checked: _Checked) -> None:
        if not checked.emails:
            return
        stager = self.stager
        moment = now()
        if stager.pg and not self.options.update_existing and self._copy(block, checked, moment):
            return
        stager.prepare()
        stager.stage(checked)
        if self.options.update_existing:
            # Existing contacts are updated first; the insert then skips them.
            self.updated += stager.update(moment)
            self.created += len(stager.insert(moment, self.options.source))
        else:
            created = stager.insert(moment, self.options.source)
            self.created += len(created)
            for line, email in zip(checked.lines, checked.emails, strict=True):
                if email not in created:
                    self.skipped += 1
                    self.report.add(
                        line, email, "already a contact; not updated", block.cells(line, pad=False)
                    )
        stager.add_to_list(moment)
        stager.record_consent(moment)

    def _copy(self, block: _Block, checked: _Checked, moment: datetime) -> bool:
        """Copy the chunk's new contacts straight into `contact` (PostgreSQL); False when
        a contact was created meanwhile: the chunk is merged instead."""
        stager = self.stager
        source = self.options.source
        emails, data = checked.emails, checked.data
        if not stager.probe:
            if stager.copy_new(emails, data, moment, source):
                self.created += len(emails)
                stager.add_to_list(moment, emails)
                stager.record_consent(moment, emails)
                return True
            # Some are contacts already: from now on they are looked up first.
            stager.probe = True
        known = stager.existing(emails)
        keep = [i for i, email in enumerate(emails) if email not in known]
        if not stager.copy_new([emails[i] for i in keep], [data[i] for i in keep], moment, source):
            return False
        self.created += len(keep)
        for line, email in zip(checked.lines, emails, strict=True):
            if email in known:
                self.skipped += 1
                self.report.add(
                    line, email, "already a contact; not updated", block.cells(line, pad=False)
                )
        stager.add_to_list(moment, emails)
        stager.record_consent(moment, emails)
        return True
