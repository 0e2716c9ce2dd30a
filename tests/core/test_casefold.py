"""Case-insensitive text means Python's str.casefold, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import unicodedata

from sqlalchemy import literal, select, union_all

from core.campaigns.service import list_campaigns
from core.contacts.service import ContactFilter, page_contacts, search_contacts
from core.infra.db import fold
from core.models import Campaign
from tests.helpers import actor_of, make_contact, make_user, make_workspace

# Every cased letter or mark outside ASCII that Python lowers, uppers or folds (~2,900).
CASED = [
    chr(i)
    for i in range(0x80, 0x30000)
    if not 0xD800 <= i < 0xE000
    and unicodedata.category(chr(i)) in ("Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "So", "Nl")
    and (chr(i).lower(), chr(i).casefold(), chr(i).upper()) != (chr(i),) * 3
]
WORDS = ["Straße", "STRASSE", "São Paulo", "ΣΊΣΥΦΟΣ", "ﬁx", "İstanbul", "Plain ASCII"]


def _fold_all(session, texts: list[str]) -> list[str]:
    out: list[str] = []
    for start in range(0, len(texts), 400):
        chunk = texts[start : start + 400]
        parts = [
            select(literal(i).label("n"), fold(literal(t)).label("f")) for i, t in enumerate(chunk)
        ]
        out += [f for _, f in sorted(session.execute(union_all(*parts)).all())]
    return out


def test_the_database_folds_every_cased_character_as_python_does(session):
    # Single characters, and runs of them, so neighbours and expansions meet.
    samples = WORDS + CASED + ["".join(CASED[i : i + 7]) for i in range(0, len(CASED), 7)]
    folded = _fold_all(session, samples)
    assert folded[: len(WORDS)] == [w.casefold() for w in WORDS]
    assert [(s, f) for s, f in zip(samples, folded, strict=True) if s.casefold() != f] == []


def test_contact_and_campaign_search_fold_unicode(session):
    ws = make_workspace(session)
    owner = actor_of(make_user(session, ws))
    make_contact(session, ws, email="a@example.com", first_name="Jürgen", last_name="Straße")
    make_contact(session, ws, email="b@example.com", first_name="JÜRGEN", last_name="Strasse")
    make_contact(session, ws, email="c@example.com", first_name="Ann", last_name="Smith")
    found = page_contacts(session, owner, ContactFilter(search="jürgen STRASSE"))
    assert sorted(c.email for c in found.rows) == ["a@example.com", "b@example.com"]
    assert page_contacts(session, owner, ContactFilter(search="straß")).total == 2
    assert [c.email for c in search_contacts(session, owner, "jÜr")] == [
        "a@example.com",
        "b@example.com",
    ]
    session.add_all(
        [Campaign(workspace_id=ws.id, name=n) for n in ("Großer Sale", "GROSSER SALE", "Other")]
    )
    session.flush()
    assert sorted(r.name for r in list_campaigns(session, owner, search="grosser")) == [
        "GROSSER SALE",
        "Großer Sale",
    ]
