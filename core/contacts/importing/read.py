"""Reading an upload: CSV (delimiter and encoding sniffed) and .xlsx (checked for
decompression bombs and DTDs before openpyxl sees it), as rows of text cells."""

from __future__ import annotations

import codecs
import csv
import io
import logging
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.infra.config import settings
from core.infra.errors import ValidationFailed

if TYPE_CHECKING:
    pass  # what csv.writer() returns


log = logging.getLogger(__name__)

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
