"""Importing contacts from CSV and Excel files, fast and with every rejected row reported.

The file is streamed in chunks, one transaction per chunk. This process cuts the file into
records; worker processes (one per core, for big files) parse and check each chunk; this
process drops in-file duplicates and a writer thread puts the chunk into `contact`: on
PostgreSQL new contacts are copied straight in, otherwise the chunk is staged into a
temporary table and merged with a few set-based statements. Memory stays bounded by a few
chunks plus one set of the addresses seen so far (for in-file duplicates).
"""

from __future__ import annotations

import bisect
import codecs
import csv
import dataclasses
import heapq
import io
import json
import logging
import multiprocessing
import os
import re
import threading
import time
import uuid
import zipfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from queue import Full, Queue
from typing import TYPE_CHECKING, Any, TextIO, cast

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from psycopg.errors import UniqueViolation
from sqlalchemy import DateTime, String, bindparam, or_, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from core.contacts.fields import (
    CONTACT_COLUMNS,
    FIELD_LABELS,
    check_key,
    coerce_value,
    create_custom_field,
    field_types,
    infer_type,
    key_from_label,
)
from core.contacts.lists import ensure_list, get_list
from core.infra.clock import now
from core.infra.config import settings
from core.infra.errors import MailwrightError, NotFound, ValidationFailed
from core.infra.jobs import enqueue
from core.infra.permissions import Actor
from core.models import Contact, Job
from core.models.statuses import JobStatus

if TYPE_CHECKING:
    from _csv import Writer as CsvWriter  # what csv.writer() returns

log = logging.getLogger(__name__)

STANDARD_TARGETS = CONTACT_COLUMNS
TARGET_LABELS = {name: FIELD_LABELS[name] for name in CONTACT_COLUMNS}
# Header spellings, compared with everything but letters and digits removed.
ALIASES = {
    "email": {"email", "emailaddress", "mail", "emailaddr", "emails", "mailaddress", "eaddress"},
    "first_name": {"firstname", "first", "givenname", "forename", "fname", "vorname", "prenom"},
    "last_name": {"lastname", "last", "surname", "familyname", "lname", "nachname", "nom"},
    "company": {"company", "companyname", "organization", "organisation", "org", "employer"},
    "city": {"city", "town", "locality", "ort", "ville"},
    "country": {"country", "countrycode", "nation", "land", "pays"},
    "phone": {"phone", "phonenumber", "telephone", "tel", "mobile", "cell", "mobilephone"},
}
DELIMITERS = (",", ";", "\t", "|")
CHUNK_ROWS = 50_000
SAMPLE_ROWS = 1000
# Columns a file may have: each unmapped one can become a custom field.
MAX_COLUMNS = 200
# An .xlsx member that unpacks to more than this many times its packed size is not a
# spreadsheet someone typed (real sheets pack 5-20 times): a decompression bomb.
MAX_PACK_RATIO = 200
EXCEL_SUFFIXES = (".xlsx", ".xlsm")


class UnreadableFile(ValidationFailed):
    """The file cannot be imported at all; nothing was changed."""


# --- reading files ---------------------------------------------------------------------------


@dataclass
class TableSource:
    """A file opened for reading: its header and a stream of (line number, cells)."""

    header: list[str]
    rows: Iterator[tuple[int, list[str]]]
    estimated_rows: int
    encoding: str = ""
    delimiter: str = ""
    nul: bool = False
    # Unparsed: (first line, the record's CSV text or its cells); CSV files only. Use either
    # this or `rows`, not both.
    records: Iterator[tuple[int, str | list[str]]] | None = None
    sheets: list[str] = field(default_factory=list)
    sheet: str = ""
    close: Callable[[], None] = lambda: None


def _scan_text(path: Path) -> tuple[str, int, bool]:
    """The encoding (UTF-8 with or without BOM, else Latin-1), the number of lines, and
    whether the file holds NUL characters (which no database text column accepts)."""
    utf8 = True
    lines = 0
    nul = False
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as fh:
        bom = fh.read(3) == codecs.BOM_UTF8
        fh.seek(0)
        while block := fh.read(1 << 20):
            lines += block.count(b"\n")
            nul = nul or b"\x00" in block
            if utf8:
                try:
                    decoder.decode(block)
                except UnicodeDecodeError:
                    utf8 = False
        if utf8:
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                utf8 = False
    if not utf8:
        return "latin-1", lines, nul
    return ("utf-8-sig" if bom else "utf-8"), lines, nul


def _sniff_delimiter(sample: str) -> str:
    """The delimiter that splits the first records into the most, equally long rows."""
    best, best_score = ",", (0.0, 0)
    body = sample.rsplit("\n", 1)[0] if "\n" in sample else sample
    for delimiter in DELIMITERS:
        try:
            records = [r for r in csv.reader(io.StringIO(body), delimiter=delimiter) if r][:50]
        except csv.Error:
            continue
        if not records or len(records[0]) < 2:
            continue
        width = len(records[0])
        consistent = sum(1 for r in records if len(r) == width) / len(records)
        score = (consistent, width)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _unique_headers(raw: list[Any]) -> list[str]:
    used = len(raw)  # up to the last named column: a sheet may format empty ones
    while used and (raw[used - 1] is None or not str(raw[used - 1]).strip()):
        used -= 1
    if used > MAX_COLUMNS:
        raise UnreadableFile(
            f"The file has {used:,} columns; at most {MAX_COLUMNS} can be imported. "
            "Remove the columns you do not need."
        )
    headers: list[str] = []
    for index, value in enumerate(raw):
        name = str(value if value is not None else "").strip().lstrip("\ufeff") or (
            f"Column {index + 1}"
        )
        base, n = name, 2
        while name in headers:
            name, n = f"{base} ({n})", n + 1
        headers.append(name)
    return headers


class _LineFeed:
    """The file's physical lines, counted, with the lines the csv reader took kept aside.

    A line can be pushed back so that the reader starts a record with it."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh
        self.count = 0
        self.taken: list[str] = []
        self.pending: str | None = None

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        if self.pending is not None:
            line, self.pending = self.pending, None
        else:
            line = next(self.fh)
            self.count += 1
        self.taken.append(line)
        return line

    def take(self) -> str:
        text, self.taken = "".join(self.taken), []
        return text


def _open_csv(path: Path) -> TableSource:
    encoding, lines, nul = _scan_text(path)
    fh = open(path, encoding=encoding, newline="")  # noqa: SIM115 - closed by TableSource.close
    sample = fh.read(65536)
    fh.seek(0)
    delimiter = _sniff_delimiter(sample)
    feed = _LineFeed(fh)
    reader = csv.reader(feed, delimiter=delimiter)
    header: list[str] | None = None
    while header is None:
        try:
            record = next(reader)
        except StopIteration:
            fh.close()
            raise UnreadableFile("The file is empty: there is no header row.") from None
        except csv.Error as exc:
            fh.close()
            raise UnreadableFile(f"The file cannot be read as CSV: {exc}.") from None
        if any(cell.strip() for cell in record):
            header = _unique_headers(record)
    header_line = feed.count
    feed.take()

    def records() -> Iterator[tuple[int, str | list[str]]]:
        # A line without a quote is a whole record: it is passed on as text, and parsed
        # (in a worker process, for big files) by the same csv module. Only lines with
        # quotes go through the reader here, to find where their record ends.
        while True:
            try:
                line = next(fh)
            except StopIteration:
                return
            feed.count += 1
            start = feed.count
            if '"' not in line:
                yield start, line
                continue
            feed.pending = line
            try:
                next(reader)
            except csv.Error as exc:
                feed.take()
                yield start, [f"\x00{exc}"]
                continue
            yield start, feed.take()

    def rows() -> Iterator[tuple[int, list[str]]]:
        for start, item in records():
            yield start, next(_parse_items([item], delimiter, nul))

    return TableSource(
        header=header,
        rows=rows(),
        records=records(),
        estimated_rows=max(0, lines - header_line),
        encoding=encoding,
        delimiter=delimiter,
        nul=nul,
        close=fh.close,
    )


def _parse_items(items: list[str | list[str]], delimiter: str, nul: bool) -> Iterator[list[str]]:
    """Cells of each item: a record's text is parsed, cells are passed through.

    Each text is exactly one record (as `records()` cut them), so one reader over the texts
    yields one record per text; an unreadable one gives a one-cell row starting with NUL."""
    reader = None
    for item in items:
        if not isinstance(item, str):
            yield item
            continue
        if reader is None:
            texts = (item for item in items if isinstance(item, str))
            reader = csv.reader(texts, delimiter=delimiter)
        try:
            cells = next(reader)
        except csv.Error as exc:
            yield [f"\x00{exc}"]
            continue
        yield [cell.replace("\x00", "") for cell in cells] if nul else cells


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        if value.hour == value.minute == value.second == value.microsecond == 0:
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _check_xlsx(path: Path) -> None:
    """Refuse a workbook that would unpack to more than MAX_XLSX_UNPACKED_MB, or holds a
    member packed like a decompression bomb, before openpyxl unpacks anything."""
    limit = settings.max_xlsx_unpacked_mb * 1024 * 1024
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UnreadableFile(f"The file is not a readable .xlsx workbook ({exc}).") from None
    if sum(m.file_size for m in members) > limit:
        raise UnreadableFile(
            f"The workbook unpacks to more than {settings.max_xlsx_unpacked_mb:,.0f} MB "
            "(MAX_XLSX_UNPACKED_MB): save it as CSV, or split it."
        )
    with zipfile.ZipFile(path) as archive:
        for member in members:
            if not member.filename.endswith((".xml", ".rels")):
                continue
            with archive.open(member) as part:
                prolog = part.read(4096).upper()
            # A document type declaration can define entities that expand without end;
            # no spreadsheet program writes one.
            if b"<!DOCTYPE" in prolog or "<!DOCTYPE".encode("utf-16-le") in prolog:
                raise UnreadableFile(
                    f"The file is not a readable .xlsx workbook ({member.filename} declares "
                    "a document type, which spreadsheets never do)."
                )
    for member in members:
        if member.file_size > 1_000_000 and member.file_size > MAX_PACK_RATIO * max(
            member.compress_size, 1
        ):
            raise UnreadableFile(
                f"The workbook's {member.filename} unpacks {member.file_size // member.compress_size:,} "
                "times its size: this is not an ordinary spreadsheet, so it is not read."
            )


def _load_workbook(path: Path) -> Any:
    from openpyxl import load_workbook

    _check_xlsx(path)
    try:
        return load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        # e.g. a DTD or entity declaration (refused by the XML parser), a broken part
        raise UnreadableFile(
            f"The file is not a readable .xlsx workbook ({type(exc).__name__})."
        ) from None


def excel_sheets(path: Path) -> list[str]:
    book = _load_workbook(path)
    try:
        return list(book.sheetnames)
    finally:
        book.close()


def _open_excel(path: Path, sheet: str | None) -> TableSource:
    book = _load_workbook(path)
    names = list(book.sheetnames)
    if sheet and sheet not in names:
        book.close()
        raise UnreadableFile(f"The workbook has no sheet {sheet!r} (it has {', '.join(names)}).")
    ws = book[sheet or names[0]]
    iterator = ws.iter_rows(values_only=True)
    header = None
    line = 0
    for values in iterator:
        line += 1
        if values and any(v is not None and str(v).strip() for v in values):
            header = _unique_headers(list(values))
            break
    if header is None:
        book.close()
        raise UnreadableFile(f"The sheet {ws.title!r} is empty: there is no header row.")
    header_line = line

    def rows() -> Iterator[tuple[int, list[str]]]:
        number = header_line
        limit = csv.field_size_limit()
        for values in iterator:
            number += 1
            cells = [_cell_text(v) for v in values]
            if any(len(cell) > limit for cell in cells):
                # The same limit and the same row error as a CSV field.
                yield number, [f"\x00a cell is longer than {limit:,} characters"]
                continue
            yield number, cells

    return TableSource(
        header=header,
        rows=rows(),
        estimated_rows=max(0, (ws.max_row or 0) - header_line),
        sheets=names,
        sheet=ws.title,
        close=book.close,
    )


def open_table(path: str | Path, sheet: str | None = None) -> TableSource:
    """Open a CSV or .xlsx file; UnreadableFile when it cannot be read at all."""
    path = Path(path)
    if not path.is_file():
        raise UnreadableFile(f"There is no file at {path}.")
    if path.suffix.lower() in EXCEL_SUFFIXES or zipfile.is_zipfile(path):
        return _open_excel(path, sheet)
    if path.suffix.lower() == ".xls":
        raise UnreadableFile("Old .xls workbooks are not supported: save it as .xlsx or CSV.")
    return _open_csv(path)


# --- mapping ---------------------------------------------------------------------------------


def _squash(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.lower())


def guess_target(header: str) -> str | None:
    squashed = _squash(header)
    for target, names in ALIASES.items():
        if squashed in names:
            return target
    if "email" in squashed or "mail" in squashed:
        return "email"
    return None


def guess_mapping(header: list[str]) -> dict[str, str]:
    """column -> standard field where the header says so, else "custom:KEY" (keys unique)."""
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for column in header:
        target = guess_target(column)
        if target and target not in used:
            mapping[column] = target
            used.add(target)
            continue
        key = base = key_from_label(column)
        n = 2
        while f"custom:{key}" in mapping.values():
            key, n = f"{base[:36]}_{n}", n + 1
        mapping[column] = f"custom:{key}"
    return mapping


@dataclass
class Preview:
    """What the mapping step shows: columns, the first rows, guesses and inferred types."""

    columns: list[str]
    rows: list[list[str]]
    mapping: dict[str, str]  # column -> "email" | standard field | "custom:key" | ""
    new_fields: dict[str, tuple[str, str]]  # key -> (label, type) proposed for unmapped columns
    inferred: dict[str, str]  # column -> inferred type
    estimated_rows: int
    encoding: str
    delimiter: str
    sheets: list[str]
    sheet: str


def inspect_file(
    session: Session, actor: Actor, path: str | Path, sheet: str | None = None
) -> Preview:
    """Read the header and the first rows; guess the mapping and the types of new fields."""
    actor.require("edit")  # reading an upload costs as much as importing it
    source = open_table(path, sheet)
    try:
        sample = []
        for _line, cells in source.rows:
            if cells and not cells[0].startswith("\x00") and any(c.strip() for c in cells):
                sample.append(cells)
            if len(sample) >= SAMPLE_ROWS:
                break
    finally:
        source.close()
    existing = field_types(session, actor)
    mapping = guess_mapping(source.header)
    new_fields: dict[str, tuple[str, str]] = {}
    inferred: dict[str, str] = {}
    for index, column in enumerate(source.header):
        values = [row[index] if index < len(row) else "" for row in sample]
        inferred[column] = infer_type(values)
        key = mapping[column].removeprefix("custom:")
        if mapping[column].startswith("custom:") and key not in existing:
            new_fields[key] = (column, inferred[column])
    return Preview(
        columns=source.header,
        rows=sample[:10],
        mapping=mapping,
        new_fields=new_fields,
        inferred=inferred,
        estimated_rows=source.estimated_rows,
        encoding=source.encoding,
        delimiter=source.delimiter,
        sheets=source.sheets,
        sheet=source.sheet,
    )


# --- validating ------------------------------------------------------------------------------

# A strict subset of what email-validator accepts (plain ASCII dot-atoms under a
# letters-only TLD): such addresses skip the slower full check; everything else gets it.
_FAST_EMAIL = re.compile(
    r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*@(?:[a-z0-9]+(?:-[a-z0-9]+)*\.)+[a-z]{2,63}"
)
_SPECIAL = tuple(SPECIAL_USE_DOMAIN_NAMES)


def check_email(raw: str) -> tuple[str, str]:
    """(normalized address, "") or ("", reason). Trimmed, lower-cased, syntax only."""
    email = raw.strip().lower()
    if not email:
        return "", "no email address"
    if (
        len(email) <= 254
        and _FAST_EMAIL.fullmatch(email)
        and (at := email.index("@")) <= 64
        and (len(email) - at <= 64 or max(map(len, email[at + 1 :].split("."))) <= 63)
        and email.rsplit(".", 1)[1] not in _SPECIAL
    ):
        return email, ""
    try:
        result = validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        return "", f"invalid email address: {exc}"
    return result.normalized.lower(), ""


def _fast_coercer(field_type: str) -> Callable[[str], Any]:
    """coerce_value for one type, with a quick path for the common spellings."""
    if field_type == "number":

        def number(value: str) -> Any:
            if value.isdigit():
                return int(value)
            return coerce_value("number", value)

        return number
    if field_type == "date":
        fromisoformat = date.fromisoformat

        def day(value: str) -> Any:
            if len(value) == 10 and value[4] == "-":
                try:
                    return fromisoformat(value).isoformat()
                except ValueError:
                    pass
            return coerce_value("date", value)

        return day
    return lambda value: coerce_value(field_type, value)


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "mapping": self.mapping,
            "new_fields": {k: list(v) for k, v in self.new_fields.items()},
            "list_name": self.list_name,
            "list_id": self.list_id,
            "update_existing": self.update_existing,
            "sheet": self.sheet,
            "source": self.source,
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


_STAGE_COLUMNS = ("line", "email", *STANDARD_TARGETS[1:], "cf")
# What a checked row holds as COPY text, followed by what the writer adds.
_COPY_COLUMNS = ("email", *STANDARD_TARGETS[1:], "custom_fields")
_COPY_ADDED = ("status", "workspace_id", "source", "created_at", "updated_at")
_SUPPRESSED_STATUS = {"bounce": "bounced", "complaint": "complained"}


def _copy_escape(value: str) -> str:
    return value.translate(_COPY_ESCAPES)


class _Stager:
    """How a chunk gets into `contact`.

    On PostgreSQL, unless updating, new contacts are copied straight into `contact`; once a
    chunk has met existing contacts (`probe`), each chunk's addresses are looked up first.
    Otherwise a chunk goes through a temporary table and a few set-based statements that
    merge it (executemany on SQLite)."""

    def __init__(self, session: Session, actor: Actor, update_existing: bool, list_id: int | None):
        self.session = session
        self.pg = session.get_bind().dialect.name == "postgresql"
        self.ws = actor.workspace_id
        self.update_existing = update_existing
        self.list_id = list_id
        self.probe = False

    def _exec(self, sql: str, **params: Any):
        statement = text(sql)
        if "now" in params:
            statement = statement.bindparams(bindparam("now", type_=DateTime(timezone=True)))
        return self.session.execute(statement, params)

    def existing(self, emails: list[str]) -> set[str]:
        """Those of `emails` that are contacts of the workspace."""
        return set(
            self._exec(
                "SELECT email FROM contact WHERE workspace_id = :ws AND email = ANY(:emails)",
                ws=self.ws,
                emails=emails,
            ).scalars()
        )

    def copy_new(self, emails: list[str], data: list[str], moment: datetime, source: str) -> bool:
        """COPY checked rows into `contact` as new contacts, in a savepoint; False (nothing
        written) when one of them is a contact already."""
        if not emails:
            return True
        reasons: dict[str, str] = {}
        if self._exec(
            "SELECT 1 FROM suppression WHERE workspace_id = :ws LIMIT 1", ws=self.ws
        ).first():
            reasons = dict(
                self._exec(
                    "SELECT email, reason FROM suppression "
                    "WHERE workspace_id = :ws AND email = ANY(:emails)",
                    ws=self.ws,
                    emails=emails,
                ).all()
            )
        stamp = moment.isoformat()
        tail = f"\t{self.ws}\t{_copy_escape(source)}\t{stamp}\t{stamp}\n"
        subscribed = "\tsubscribed" + tail
        if reasons:
            payload = "".join(
                text_
                + (
                    subscribed
                    if (reason := reasons.get(email)) is None
                    else f"\t{_SUPPRESSED_STATUS.get(reason, 'unsubscribed')}{tail}"
                )
                for email, text_ in zip(emails, data, strict=True)
            )
        else:
            payload = subscribed.join(data) + subscribed
        names = ", ".join(_COPY_COLUMNS + _COPY_ADDED)
        try:
            with self.session.begin_nested():
                raw = self.session.connection().connection.driver_connection
                assert raw is not None  # a checked-out connection has its driver connection
                with (
                    raw.cursor() as cursor,
                    cursor.copy(f"COPY contact ({names}) FROM STDIN") as copy,
                ):
                    copy.write(payload)
        except UniqueViolation:
            return False
        return True

    def prepare(self) -> None:
        columns = ", ".join(f"{c} {'bigint' if c == 'line' else 'text'}" for c in _STAGE_COLUMNS)
        if self.pg:
            self._exec(
                f"CREATE TEMP TABLE IF NOT EXISTS mw_import_stage ({columns}) ON COMMIT DELETE ROWS"
            )
            self._exec("TRUNCATE mw_import_stage")
        else:
            self._exec(f"CREATE TEMP TABLE IF NOT EXISTS mw_import_stage ({columns})")
            self._exec("DELETE FROM mw_import_stage")

    def stage(self, checked: _Checked) -> None:
        connection = self.session.connection()
        if self.pg:
            raw = connection.connection.driver_connection
            assert raw is not None  # a checked-out connection has its driver connection
            with raw.cursor() as cursor:
                names = ", ".join(_STAGE_COLUMNS[1:])  # the line is not needed here
                with cursor.copy(f"COPY mw_import_stage ({names}) FROM STDIN") as copy:
                    copy.write("\n".join(checked.data) + "\n")
            self._exec("ANALYZE mw_import_stage")
        else:
            marks = ", ".join("?" for _ in _STAGE_COLUMNS)
            connection.exec_driver_sql(
                f"INSERT INTO mw_import_stage VALUES ({marks})", checked.data
            )

    def update(self, moment: datetime) -> int:
        keep = ", ".join(
            f"{c} = CASE WHEN t.{c} <> '' THEN t.{c} ELSE contact.{c} END"
            for c in STANDARD_TARGETS[1:]
        )
        merged = (
            "contact.custom_fields || t.cf::jsonb"
            if self.pg
            else "json_patch(contact.custom_fields, t.cf)"
        )
        # Status is never touched: an update does not re-subscribe anybody.
        return self._exec(
            f"UPDATE contact SET {keep}, custom_fields = {merged}, updated_at = :now "
            "FROM mw_import_stage t WHERE contact.workspace_id = :ws AND contact.email = t.email",
            ws=self.ws,
            now=moment,
        ).rowcount

    def insert(self, moment: datetime, source: str) -> set[str]:
        """Create the staged addresses that are not contacts yet; returns those created."""
        columns = ", ".join(STANDARD_TARGETS[1:])
        picked = ", ".join(f"t.{c}" for c in STANDARD_TARGETS[1:])
        cf = "t.cf::jsonb" if self.pg else "t.cf"
        # Suppressed addresses come in with the status that matches why they are suppressed.
        return set(
            self._exec(
                f"INSERT INTO contact (workspace_id, email, {columns}, custom_fields, status, "
                "source, created_at, updated_at) "
                f"SELECT :ws, t.email, {picked}, {cf}, "
                "CASE WHEN s.reason IS NULL THEN 'subscribed' WHEN s.reason = 'bounce' THEN 'bounced' "
                "WHEN s.reason = 'complaint' THEN 'complained' ELSE 'unsubscribed' END, "
                ":source, :now, :now "
                "FROM mw_import_stage t LEFT JOIN suppression s "
                "ON s.workspace_id = :ws AND s.email = t.email "
                "WHERE NOT EXISTS (SELECT 1 FROM contact c WHERE c.workspace_id = :ws "
                "AND c.email = t.email) "
                "ON CONFLICT (workspace_id, email) DO NOTHING RETURNING email",
                ws=self.ws,
                now=moment,
                source=source,
            ).scalars()
        )

    def add_to_list(self, moment: datetime, emails: list[str] | None = None) -> None:
        """Put the chunk's contacts on the list: those staged, or those with `emails`."""
        if self.list_id is None:
            return
        source = (
            "FROM contact c WHERE c.workspace_id = :ws AND c.email = ANY(:emails) "
            if emails is not None
            else "FROM mw_import_stage t JOIN contact c "
            "ON c.workspace_id = :ws AND c.email = t.email WHERE true "
        )
        params = {"emails": emails} if emails is not None else {}
        self._exec(
            f"INSERT INTO list_membership (list_id, contact_id, created_at) "
            f"SELECT :list_id, c.id, :now {source}"
            "ON CONFLICT (list_id, contact_id) DO NOTHING",
            ws=self.ws,
            now=moment,
            list_id=self.list_id,
            **params,
        )


def _max_length(name: str) -> int:
    length = cast(String, Contact.__table__.c[name].type).length
    assert length is not None  # every standard text column of contact is a sized String
    return length


# Lengths of the contact's text columns (core/models/__init__.py).
MAX_LENGTHS = {name: _max_length(name) for name in STANDARD_TARGETS if name != "email"}


@dataclass
class _Plan:
    email_index: int
    standard: list[tuple[int, int, str, int]]  # (column index, staged position, name, max)
    custom: list[tuple[int, str, str]]  # (column index, key, type)


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
    return _Plan(header.index(emails[0]), standard, custom)


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
    session: Session,
    actor: Actor,
    path: str | Path,
    options: ImportOptions | None = None,
    progress: ProgressFn | None = None,
    chunk_rows: int = CHUNK_ROWS,
    workers: int | None = None,
) -> ImportResult:
    """Import a CSV or .xlsx file into the actor's workspace.

    Commits once per chunk (a million rows are never one transaction), so the caller hands
    over a plain session (not one inside `Session.begin()`) that this function may commit.
    `workers` processes check the rows (None: one per core for big files, 0: none).
    Raises UnreadableFile, changing nothing, when the file cannot be read or mapped."""
    actor.require("edit")
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
        stager = _Stager(session, actor, options.update_existing, list_id)
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


@dataclass
class _Block:
    """A chunk of the file as sent to a worker: line numbers and unparsed records."""

    lines: list[int]
    items: list[str | list[str]]  # a CSV record's text, or its cells
    delimiter: str
    nul: bool
    plan: _Plan
    width: int
    copy: bool  # rows as COPY text (PostgreSQL) rather than tuples

    def cells(self, line: int, pad: bool = True) -> list[str]:
        """The row at `line` as read (for the error report); padded to the header's width
        as the checks saw it."""
        item = self.items[bisect.bisect_left(self.lines, line)]
        cells = next(_parse_items([item], self.delimiter, self.nul))
        return cells + [""] * (self.width - len(cells)) if pad else cells


@dataclass
class _Checked:
    """What a worker found in a block: counts, rejected rows, and the rows to write."""

    rows: int = 0
    invalid: int = 0
    bad: list[tuple[int, str, str, list[str]]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    # Per row: email and fields as COPY text (tab-separated, escaped) or a stage tuple.
    data: list[Any] = field(default_factory=list)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _check_block(block: _Block) -> _Checked:
    """Parse and check a block's rows (in a worker process for big files).

    Everything but in-file duplicates, which need every earlier row of the file."""
    out = _Checked()
    plan = block.plan
    width = block.width
    email_index = plan.email_index
    standard = plan.standard
    custom = [(index, key, type_, _fast_coercer(type_)) for index, key, type_ in plan.custom]
    copy = block.copy
    blank: list[Any] = [""] * 9  # the line number, then the text columns
    dumps = json.dumps
    bad = out.bad
    for line, cells in zip(
        block.lines, _parse_items(block.items, block.delimiter, block.nul), strict=True
    ):
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue  # an empty line
        if cells[0].startswith("\x00"):
            out.rows += 1
            out.invalid += 1
            bad.append((line, "", f"unreadable row: {cells[0][1:]}", []))
            continue
        if len(cells) < width:
            if not any(c.strip() for c in cells):
                continue
            cells = cells + [""] * (width - len(cells))
        out.rows += 1
        if len(cells) > width and any(c.strip() for c in cells[width:]):
            out.invalid += 1
            bad.append(
                (
                    line,
                    cells[email_index].strip(),
                    f"the row has {len(cells)} fields, the header {width} (a stray delimiter "
                    "or quote?)",
                    cells,
                )
            )
            continue
        email, reason = check_email(cells[email_index])
        if reason:
            if not any(c.strip() for c in cells):
                out.rows -= 1
                continue  # a row of empty cells
            out.invalid += 1
            bad.append((line, cells[email_index].strip(), reason, cells))
            continue
        row = blank.copy()
        row[0] = line
        row[1] = email
        problem = ""
        for index, position, name, limit in standard:
            value = cells[index].strip()
            if len(value) > limit:
                problem = f"{name} is longer than {limit} characters"
            row[position] = value
        values: dict[str, Any] = {}
        for index, key, type_, coerce in custom:
            if problem:
                break
            value = cells[index]
            if value == "" or value.isspace():
                continue
            if type_ == "text":
                values[key] = value.strip()
                continue
            try:
                values[key] = coerce(value)
            except ValidationFailed as exc:
                problem = f"{key}: {exc}"
                break
        if problem:
            out.invalid += 1
            bad.append((line, email, problem, cells))
            continue
        row[8] = dumps(values) if values else "{}"
        out.lines.append(line)
        out.emails.append(email)
        if copy:
            text_ = "\t".join(row[1:])
            if text_.count("\t") != 7 or "\\" in text_ or "\n" in text_ or "\r" in text_:
                text_ = "\t".join(value.translate(_COPY_ESCAPES) for value in row[1:])
            out.data.append(text_)
        else:
            out.data.append(tuple(row))
    return out


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
        return True


__all__ = [
    "ImportOptions",
    "ImportResult",
    "Preview",
    "UnreadableFile",
    "check_email",
    "excel_sheets",
    "import_contacts",
    "inspect_file",
    "open_table",
]


# --- background imports ----------------------------------------------------------------------

JOB_KIND = "contacts_import"
IMPORT_TASK = "worker.tasks_contacts.import_contacts"


def upload_dir() -> Path:
    folder = settings.data_dir / "imports" / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_upload(name: str, data: bytes) -> Path:
    """Keep an uploaded file where the worker can read it; refuse one over MAX_UPLOAD_MB."""
    if len(data) > settings.max_upload_mb * 1024 * 1024:
        raise UnreadableFile(
            f"The file is {len(data) / 1024 / 1024:,.0f} MB; uploads are limited to "
            f"{settings.max_upload_mb:,.0f} MB (MAX_UPLOAD_MB)."
        )
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name)[-80:] or "upload.csv"
    path = upload_dir() / f"{uuid.uuid4().hex[:12]}-{safe}"
    path.write_bytes(data)
    return path


def start_import_job(
    session: Session, actor: Actor, path: str | Path, options: ImportOptions, estimated_rows: int
) -> Job:
    """Queue the import for the worker (after the caller commits); returns the job to follow."""
    actor.require("edit")
    open_table(path, options.sheet).close()  # unreadable files fail here, not in the worker
    job = Job(
        workspace_id=actor.workspace_id,
        kind=JOB_KIND,
        status=JobStatus.PENDING,
        total=estimated_rows,
        params={"path": str(path), "options": options.to_dict(), "role": actor.role},
        created_by_id=actor.user_id,
    )
    session.add(job)
    session.flush()
    enqueue(session, IMPORT_TASK, job.id)
    return job


def import_jobs(session: Session, actor: Actor, limit: int = 5) -> list[Job]:
    """The workspace's latest import jobs, newest first."""
    actor.require("read")
    return list(
        session.scalars(
            select(Job)
            .where(Job.workspace_id == actor.workspace_id, Job.kind == JOB_KIND)
            .order_by(Job.created_at.desc(), Job.id.desc())
            .limit(limit)
        )
    )


def run_import_job(sessions: sessionmaker[Session], job_id: int) -> str:
    """Run a queued import (the worker task). Safe to repeat: a finished job is left alone,
    and running an import again merges into the contacts it created. It runs its own
    transactions (the job's bookkeeping apart from the import's), so it takes a session
    factory."""
    with sessions.begin() as session:
        job = session.get(Job, job_id)
        if job is None or job.kind != JOB_KIND:
            return "missing"
        if job.status in (JobStatus.DONE, JobStatus.FAILED):
            return job.status
        job.status = JobStatus.RUNNING
        params = dict(job.params)
        actor = Actor(
            workspace_id=job.workspace_id,
            role=params.get("role", "editor"),
            user_id=job.created_by_id,
        )
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if time.monotonic() - last[0] < 1.0:
            return
        last[0] = time.monotonic()
        with sessions.begin() as s:
            s.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(progress=done, total=total, updated_at=now())
            )

    options = ImportOptions.from_dict(params["options"])
    try:
        with sessions() as session:
            result = import_contacts(session, actor, params["path"], options, progress=progress)
            session.commit()
    except MailwrightError as exc:
        _finish_job(sessions, job_id, "failed", error=str(exc))
        return "failed"
    except Exception as exc:
        _finish_job(sessions, job_id, "failed", error=f"The import stopped unexpectedly: {exc}")
        raise
    _finish_job(sessions, job_id, "done", result=result.to_dict(), progress=result.rows)
    return "done"


# A pending job no worker took, or a running one that stopped reporting progress (the
# worker reports every second), is handed out again; after MAX_REQUEUES it fails.
STALE_PENDING = timedelta(minutes=10)
STALE_RUNNING = timedelta(minutes=15)
MAX_REQUEUES = 3


def recover_import_jobs(session: Session) -> dict[str, int]:
    """Beat's sweep: queue again the imports a lost task or a dead worker left behind.

    Safe because an import is idempotent (running it again merges into what it created)."""
    current = now()
    stale = session.scalars(
        select(Job).where(
            Job.kind == JOB_KIND,
            or_(
                (Job.status == JobStatus.PENDING) & (Job.updated_at < current - STALE_PENDING),
                (Job.status == JobStatus.RUNNING) & (Job.updated_at < current - STALE_RUNNING),
            ),
        )
    ).all()
    stats = {"requeued": 0, "failed": 0}
    for job in stale:
        tries = int(job.params.get("requeued", 0))
        if tries >= MAX_REQUEUES:
            job.status = JobStatus.FAILED
            job.error = (
                f"No worker finished this import after {tries + 1} tries; "
                "check that a worker is running, then import the file again."
            )
            stats["failed"] += 1
            continue
        job.params = {**job.params, "requeued": tries + 1}
        job.status = JobStatus.PENDING
        job.updated_at = current
        enqueue(session, IMPORT_TASK, job.id)
        stats["requeued"] += 1
    return stats


def _finish_job(sessions: sessionmaker[Session], job_id: int, status: str, **values: Any) -> None:
    with sessions.begin() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise NotFound(f"Import job {job_id} no longer exists.")
        job.status = status
        for key, value in values.items():
            setattr(job, key, value)
        if "progress" in values:
            job.total = max(job.total, values["progress"])
