"""Contacts' time zones: checking an imported zone name, and a country's zone as a guess.

The guess is only ever offered (the import's mapping step, off by default), never made
silently: a country with several zones gets its principal one (the first in the tz
database's zone.tab: America/New_York for the United States), which the mapping step
says. The country table is core/contacts/data/country_zones.json, generated once from the
tz database's zone.tab and iso3166.tab by core/contacts/data/make_country_zones.py; nothing
reads /usr/share at run time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo, available_timezones

TABLE = Path(__file__).parent / "data" / "country_zones.json"


@cache
def _zones() -> dict[str, str]:
    """Every zone this machine knows, by its lower-cased name."""
    return {name.lower(): name for name in available_timezones()}


def zone_name(value: str) -> str | None:
    """The IANA name `value` spells, in any case ("asia/kolkata"), or None."""
    return _zones().get(value.strip().lower())


def check_zone_cell(value: str) -> tuple[str, str]:
    """An imported cell: (zone name or "" when blank, "") or ("", reason)."""
    if not value.strip():
        return "", ""
    name = zone_name(value)
    if name is None:
        return (
            "",
            f"timezone: {value.strip()!r} is not a time zone (use a name such as Europe/Berlin)",
        )
    return name, ""


@dataclass(frozen=True)
class Country:
    code: str
    name: str
    zones: tuple[str, ...]

    @property
    def zone(self) -> str:
        """The principal zone: the guess for everyone in the country."""
        return self.zones[0]

    @property
    def several(self) -> bool:
        """Its zones keep different clocks (not only different names)."""
        offsets = set()
        for name in self.zones:
            tz = ZoneInfo(name)
            for month in (1, 7):
                offsets.add((month, datetime(2026, month, 15, 12, tzinfo=tz).utcoffset()))
        return len(offsets) > 2


@cache
def _countries() -> dict[str, Country]:
    """Countries by ISO code, English name and alias, lower-cased."""
    table = json.loads(TABLE.read_text(encoding="utf-8"))
    known = _zones()
    found: dict[str, Country] = {}
    for code, entry in table.items():
        zones = tuple(z for z in entry["zones"] if z.lower() in known)
        if not zones:
            continue
        country = Country(code, entry["name"], zones)
        for spelling in (code, entry["name"], *entry["aliases"]):
            found.setdefault(spelling.strip().lower(), country)
    return found


def country_of(value: str) -> Country | None:
    """The country a cell names: an ISO code ("IN") or an English name ("India")."""
    return _countries().get(value.strip().lower()) if value else None


def guess_zone(country: str) -> str:
    """The guessed zone of a contact in `country` ("" when the country is not known)."""
    found = country_of(country)
    return found.zone if found else ""


def spanning_several(values: list[str]) -> list[Country]:
    """The countries among `values` whose zones keep different clocks, by name."""
    found = {c.code: c for v in values if (c := country_of(v)) is not None and c.several}
    return sorted(found.values(), key=lambda c: c.name)
