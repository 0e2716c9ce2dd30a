"""Exporting the contacts a filter shows (CSV or .xlsx) and their consent record (CSV), safe
to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
import re
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.contacts.consent import SOURCE_LABELS
from core.contacts.fields import list_custom_fields
from core.contacts.service import STANDARD_COLUMNS, ContactFilter, filtered_query
from core.infra.config import settings
from core.infra.errors import ValidationFailed
from core.infra.permissions import Actor
from core.models import Consent, Contact, ContactList, User

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"-?\d+(\.\d+)?")
XLSX_MAX_ROWS = 1_048_575
# The most rows one "Export consent" writes (the file is built in memory for a download).
CONSENT_EXPORT_MAX_ROWS = 100_000


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


# --- the consent record ---------------------------------------------------------------------

CONSENT_COLUMNS = (
    "email",
    "time",
    "action",
    "source",
    "source_detail",
    "lists",
    "by_user",
    "ip",
    "user_agent",
    "consent_text",
    "confirmed_at",
    "confirm_ip",
    "confirm_user_agent",
)


def _consent_rows(session: Session, actor: Actor, contact_ids: Any) -> Iterator[dict[str, Any]]:
    names = dict(
        session.execute(
            select(ContactList.id, ContactList.name).where(
                ContactList.workspace_id == actor.workspace_id
            )
        ).all()
    )
    query = (
        select(Consent, Contact.email, User.email)
        .join(Contact, Contact.id == Consent.contact_id)
        .outerjoin(User, User.id == Consent.user_id)
        .where(Consent.workspace_id == actor.workspace_id, Consent.contact_id.in_(contact_ids))
        .order_by(Consent.contact_id, Consent.created_at, Consent.id)
    )
    for row, email, user in session.execute(query.execution_options(yield_per=2000)):
        yield {
            "email": email,
            "time": row.created_at,
            "action": row.action,
            "source": row.source,
            "source_label": SOURCE_LABELS.get(row.source, row.source),
            "source_detail": row.source_detail,
            "lists": ", ".join(names.get(i, f"#{i} (deleted)") for i in row.list_ids or []),
            "by_user": user or "",
            "ip": row.ip,
            "user_agent": row.user_agent,
            "consent_text": row.consent_text,
            "confirmed_at": row.confirmed_at,
            "confirm_ip": row.confirm_ip,
            "confirm_user_agent": row.confirm_user_agent,
        }


def contact_consent(session: Session, actor: Actor, contact_id: int) -> list[dict[str, Any]]:
    """One contact's consent history, oldest first, ready to show (list names, user)."""
    actor.require("read")
    return list(_consent_rows(session, actor, [int(contact_id)]))


def consent_csv(
    session: Session,
    actor: Actor,
    *,
    contact_id: int | None = None,
    flt: ContactFilter | None = None,
    max_rows: int = CONSENT_EXPORT_MAX_ROWS,
) -> bytes:
    """The consent rows of one contact or of the contacts a filter shows, as CSV (UTF-8
    with BOM, cells a spreadsheet will not run as formulas). ValidationFailed past
    `max_rows`: narrow the filter."""
    actor.require("read")
    if contact_id is not None:
        ids: Any = [int(contact_id)]
    else:
        ids = filtered_query(actor, flt or ContactFilter()).with_only_columns(Contact.id)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CONSENT_COLUMNS)
    for count, row in enumerate(_consent_rows(session, actor, ids), start=1):
        if count > max_rows:
            raise ValidationFailed(
                f"More than {max_rows:,} consent rows: narrow the filter and export again."
            )
        writer.writerow([_cell(row[c]) for c in CONSENT_COLUMNS])
    return ("\ufeff" + out.getvalue()).encode("utf-8")
