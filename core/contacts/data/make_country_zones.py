"""Generate country_zones.json from the tz database's tables (run by hand, output committed).

    python core/contacts/data/make_country_zones.py /usr/share/zoneinfo > core/contacts/data/country_zones.json

zone.tab, not zone1970.tab: zone1970.tab files Denmark under Europe/Berlin (the same clocks
since 1970), where a marketer expects Europe/Copenhagen; zone.tab names each country's own
zones, the principal one first. iso3166.tab gives the English names; a few everyday
spellings are added as aliases. The app never reads /usr/share at run time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ALIASES = {
    "GB": ["United Kingdom", "UK", "Great Britain", "England", "Scotland", "Wales"],
    "US": ["USA", "United States of America", "U.S.", "U.S.A.", "America"],
    "KR": ["South Korea", "Korea", "Republic of Korea"],
    "KP": ["North Korea"],
    "CZ": ["Czechia"],
    "CD": ["Democratic Republic of the Congo", "DR Congo"],
    "CG": ["Republic of the Congo", "Congo"],
    "CI": ["Ivory Coast", "Cote d'Ivoire"],
    "RU": ["Russian Federation"],
    "TR": ["Türkiye", "Turkiye"],
    "NL": ["The Netherlands", "Holland"],
    "AE": ["UAE"],
    "VA": ["Vatican", "Holy See"],
    "SZ": ["Eswatini", "Swaziland"],
    "MK": ["Macedonia"],
    "CV": ["Cabo Verde"],
    "TW": ["Republic of China"],
    "CN": ["People's Republic of China", "PRC"],
}


def main(root: str) -> None:
    base = Path(root)
    names: dict[str, str] = {}
    for line in (base / "iso3166.tab").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            code, name = line.split("\t")[:2]
            names[code] = name
    zones: dict[str, list[str]] = {}
    for line in (base / "zone.tab").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            code, _coordinates, zone = line.split("\t")[:3]
            zones.setdefault(code, []).append(zone)
    table = {
        code: {"name": names.get(code, code), "aliases": ALIASES.get(code, []), "zones": found}
        for code, found in sorted(zones.items())
    }
    sys.stdout.write(json.dumps(table, ensure_ascii=False, indent=0, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/zoneinfo")
