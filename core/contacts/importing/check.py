"""Checking rows: addresses (a fast path for common ones, email-validator for the rest),
typed custom values, and a block of rows checked in a worker process."""

from __future__ import annotations

import bisect
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from core.contacts.fields import (
    coerce_value,
)
from core.infra.errors import ValidationFailed

if TYPE_CHECKING:
    pass  # what csv.writer() returns


from core.contacts.importing.mapping import STANDARD_TARGETS
from core.contacts.importing.read import _parse_items
from core.contacts.timezones import check_zone_cell, guess_zone

# A checked row: the line, the email, the other standard fields, the custom fields' JSON.
ROW_WIDTH = 1 + len(STANDARD_TARGETS) + 1

log = logging.getLogger(__name__)

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


@dataclass
class _Plan:
    email_index: int
    standard: list[tuple[int, int, str, int]]  # (column index, staged position, name, max)
    custom: list[tuple[int, str, str]]  # (column index, key, type)
    # "Guess time zone from country" (chosen in the mapping step): the country column's
    # index, and where the row keeps its zone.
    guess_zone_from: int | None = None
    zone_position: int = 0


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
    blank: list[Any] = [""] * ROW_WIDTH  # the line number, then the text columns
    guess_from, zone_position = plan.guess_zone_from, plan.zone_position
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
            elif name == "timezone":
                value, problem = check_zone_cell(value)
            row[position] = value
        if guess_from is not None and not problem:
            row[zone_position] = guess_zone(cells[guess_from])
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
        row[-1] = dumps(values) if values else "{}"
        out.lines.append(line)
        out.emails.append(email)
        if copy:
            text_ = "\t".join(row[1:])
            if (
                text_.count("\t") != ROW_WIDTH - 2
                or "\\" in text_
                or "\n" in text_
                or "\r" in text_
            ):
                text_ = "\t".join(value.translate(_COPY_ESCAPES) for value in row[1:])
            out.data.append(text_)
        else:
            out.data.append(tuple(row))
    return out
