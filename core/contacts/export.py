"""Exporting the contacts a filter shows, as CSV or .xlsx, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import re
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from core.contacts.fields import list_custom_fields
from core.contacts.service import STANDARD_COLUMNS, ContactFilter, filtered_query
from core.infra.config import settings
from core.infra.errors import ValidationFailed
from core.infra.permissions import Actor
from core.models import Contact

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"-?\d+(\.\d+)?")
XLSX_MAX_ROWS = 1_048_575


def neutralize(value: str) -> str:
    """A cell a spreadsheet will not run as a formula (OWASP "CSV injection")."""
    if value and value.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return neutralize(str(value))


def export_rows(session: Session, actor: Actor, flt: ContactFilter) -> Iterator[list[str]]:
    """The header, then one row per matching contact (streamed, by id)."""
    actor.require("read")
    keys = [f.key for f in list_custom_fields(session, actor)]
    yield [
        "email",
        *STANDARD_COLUMNS,
        "status",
        "source",
        "created_at",
        "updated_at",
        *keys,
    ]
    query = filtered_query(actor, flt).order_by(Contact.id)
    result = session.execute(query.execution_options(yield_per=5000))
    for partition in result.scalars().partitions():
        for c in partition:
            custom = c.custom_fields or {}
            yield [
                _cell(c.email),
                *(_cell(getattr(c, column)) for column in STANDARD_COLUMNS),
                c.status,
                _cell(c.source),
                _cell(c.created_at),
                _cell(c.updated_at),
                *(_cell(custom.get(k)) for k in keys),
            ]
        session.expunge_all()


def export_contacts(
    session: Session, actor: Actor, flt: ContactFilter | None = None, fmt: str = "csv"
) -> Path:
    """Write the filter's contacts to a new file under data/exports; returns its path."""
    flt = flt or ContactFilter()
    if fmt not in ("csv", "xlsx"):
        raise ValidationFailed("Export as csv or xlsx.")
    folder = settings.data_dir / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"contacts-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}.{fmt}"
    rows = export_rows(session, actor, flt)
    if fmt == "csv":
        # UTF-8 with BOM so Excel reads accents right.
        with open(path, "w", encoding="utf-8-sig", newline="") as fh:
            csv.writer(fh).writerows(rows)
        return path
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Contacts")
    for count, row in enumerate(rows):
        if count > XLSX_MAX_ROWS:
            path.unlink(missing_ok=True)
            raise ValidationFailed("Too many rows for one .xlsx sheet: export as CSV.")
        sheet.append(row)
    book.save(path)
    return path
