"""Which column goes where: header guesses, and the preview a page shows before importing."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from core.contacts.fields import (
    CONTACT_COLUMNS,
    FIELD_LABELS,
    field_types,
    infer_type,
    key_from_label,
)
from core.contacts.timezones import Country, spanning_several
from core.infra.permissions import Actor

if TYPE_CHECKING:
    pass  # what csv.writer() returns


from core.contacts.importing.read import SAMPLE_ROWS, open_table

log = logging.getLogger(__name__)

# The contact's time zone is imported too (an IANA name, checked per row), though no form
# edits it as a field (Settings and the contact page do).
STANDARD_TARGETS = (*CONTACT_COLUMNS, "timezone")
TARGET_LABELS = {name: FIELD_LABELS[name] for name in CONTACT_COLUMNS} | {"timezone": "Time zone"}
# Header spellings, compared with everything but letters and digits removed.
ALIASES = {
    "email": {"email", "emailaddress", "mail", "emailaddr", "emails", "mailaddress", "eaddress"},
    "first_name": {"firstname", "first", "givenname", "forename", "fname", "vorname", "prenom"},
    "last_name": {"lastname", "last", "surname", "familyname", "lname", "nachname", "nom"},
    "company": {"company", "companyname", "organization", "organisation", "org", "employer"},
    "city": {"city", "town", "locality", "ort", "ville"},
    "country": {"country", "countrycode", "nation", "land", "pays"},
    "phone": {"phone", "phonenumber", "telephone", "tel", "mobile", "cell", "mobilephone"},
    "timezone": {"timezone", "tz", "tzname", "zone", "ianatimezone", "timezonename", "olson"},
}

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


@dataclass
class ZoneGuessOffer:
    """ "Guess time zone from country", offered when a column is mapped to the country and
    none to the time zone: the countries of the sample with several zones, each of which
    gets its principal zone."""

    country_column: str
    several: list[Country]

    @property
    def note(self) -> str:
        """What the mapping step says under the option."""
        text = (
            "A guess, not a fact: each contact gets their country's time zone (a contact "
            "whose country is not recognised gets none, so the workspace's is used)."
        )
        if self.several:
            spans = "; ".join(
                f"{c.name} ({len(c.zones)} zones: {c.zone} is used)" for c in self.several
            )
            text += f" Countries in this file that span several zones: {spans}."
        return text


def zone_guess_offer(preview: Preview, mapping: dict[str, str]) -> ZoneGuessOffer | None:
    """The offer for `mapping` (the mapping step's current choice), or None when there is
    no country column or a column already gives the time zone."""
    targets = set(mapping.values())
    columns = [c for c, t in mapping.items() if t == "country"]
    if "timezone" in targets or not columns or columns[0] not in preview.columns:
        return None
    index = preview.columns.index(columns[0])
    values = [row[index] for row in preview.rows if index < len(row)]
    return ZoneGuessOffer(columns[0], spanning_several(values))
