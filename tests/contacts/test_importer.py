"""Importing tricky CSV and Excel files (core/contacts/importing.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import os
import random
import string
from concurrent.futures.process import BrokenProcessPool

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from core.contacts.fields import create_custom_field, field_types
from core.contacts.importing import (
    ImportOptions,
    UnreadableFile,
    check_email,
    import_contacts,
    inspect_file,
    open_table,
    zone_guess_offer,
)
from core.contacts.importing.read import _parse_items
from core.contacts.importing.write import _ChunkWriter
from core.contacts.lists import find_list
from core.infra.db import get_sessionmaker, session_scope
from core.models import Contact, ListMembership, Suppression
from tests.helpers import actor_of, make_contact, make_user, make_workspace, sessions_on


@pytest.fixture
def owner(session):
    return actor_of(make_user(session, make_workspace(session)))


def contacts(session, actor) -> dict[str, Contact]:
    rows = session.scalars(select(Contact).where(Contact.workspace_id == actor.workspace_id))
    return {c.email: c for c in rows}


def error_rows(result) -> list[dict[str, str]]:
    with open(result.errors_file, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_bom_semicolons_quoted_newlines_and_bad_rows(session, owner, tmp_path):
    data = (
        "\ufeffE-Mail;First Name;Nachname;Notes;Plan Tier;Score;Joined;VIP\r\n"
        'Anna@Example.COM;Anna;Ärger;"line one\nline two; with semicolon";gold;12;2024-01-31;yes\r\n'
        "\r\n"
        "not-an-email;Bob;B;;;3;2024-02-01;no\r\n"
        ";Nobody;;;;;;\r\n"
        "anna@example.com;Anna Again;;;;;;\r\n"
        "carl@example.org;Carl;C;;silver;4.5;2024-03-05;no\r\n"
        "dora@example.org;Dora;D;;;oops;2024-03-06;no\r\n"
    ).encode()
    path = write(tmp_path, "people.csv", data)
    preview = inspect_file(session, owner, path)
    assert preview.delimiter == ";" and preview.encoding == "utf-8-sig"
    assert preview.mapping["E-Mail"] == "email"
    assert preview.mapping["First Name"] == "first_name"
    assert preview.mapping["Nachname"] == "last_name"
    assert preview.mapping["Plan Tier"] == "custom:plan_tier"
    # One bad value makes the inferred type text; the user confirms "number" instead.
    assert preview.inferred["Score"] == "text" and preview.inferred["VIP"] == "boolean"
    assert preview.new_fields["joined"] == ("Joined", "date")
    options = ImportOptions(list_name="Newsletter", new_fields={"score": ("Score", "number")})
    result = import_contacts(sessions_on(session), owner, path, options)
    found = contacts(session, owner)
    assert set(found) == {"anna@example.com", "carl@example.org"}
    anna = found["anna@example.com"]
    assert anna.first_name == "Anna" and anna.last_name == "Ärger"
    assert anna.custom_fields["notes"] == "line one\nline two; with semicolon"
    assert anna.custom_fields["score"] == 12 and anna.custom_fields["vip"] is True
    assert anna.custom_fields["joined"] == "2024-01-31"
    assert found["carl@example.org"].custom_fields["score"] == 4.5
    assert field_types(session, owner) == {
        "joined": "date",
        "notes": "text",
        "plan_tier": "text",
        "score": "number",
        "vip": "boolean",
    }
    assert (result.created, result.updated, result.invalid, result.duplicates) == (2, 0, 3, 1)
    assert result.skipped == 1
    # Line numbers are the file's physical lines: the quoted newline makes Anna lines 2-3.
    reasons = {int(r["line"]): (r["email"], r["reason"]) for r in error_rows(result)}
    assert set(reasons) == {5, 6, 7, 9}
    assert "invalid email" in reasons[5][1] and reasons[5][0] == "not-an-email"
    assert reasons[6][1] == "no email address"
    assert reasons[7] == ("anna@example.com", "duplicate of line 2 in this file; that row was used")
    assert reasons[9][0] == "dora@example.org" and "score" in reasons[9][1]
    newsletter = find_list(session, owner, "Newsletter")
    members = session.scalar(select(func.count()).where(ListMembership.list_id == newsletter.id))
    assert members == 2


def test_latin1_tabs_and_empty_lines(session, owner, tmp_path):
    data = "email\tfirst_name\tcity\n\nzoe@example.com\tZoë\tKöln\n\n\nYVES@EXAMPLE.COM\tYves\tSèvres\n"
    path = write(tmp_path, "latin.tsv", data.encode("latin-1"))
    result = import_contacts(sessions_on(session), owner, path)
    assert (result.created, result.invalid, result.errors_file) == (2, 0, None)
    found = contacts(session, owner)
    assert found["zoe@example.com"].first_name == "Zoë"
    assert found["yves@example.com"].city == "Sèvres"


def test_commas_in_quotes_and_a_stray_field(session, owner, tmp_path):
    data = (
        'email,company,city\n"a@example.com","Acme, Inc.","Paris"\nb@example.com,Beta,Rome,extra\n'
    )
    result = import_contacts(sessions_on(session), owner, write(tmp_path, "c.csv", data.encode()))
    assert result.created == 1 and result.invalid == 1
    assert contacts(session, owner)["a@example.com"].company == "Acme, Inc."
    assert "4 fields" in error_rows(result)[0]["reason"]


def test_xlsx_first_or_chosen_sheet(session, owner, tmp_path):
    from datetime import datetime

    from openpyxl import Workbook

    book = Workbook()
    first = book.active
    first.title = "Leads"
    first.append(["Email Address", "First", "Signed up", "Seats"])
    first.append(["lea@example.com", "Lea", datetime(2024, 5, 1), 3])
    first.append(["bad@", "Bad", None, 1])
    other = book.create_sheet("Partners")
    other.append(["email", "company"])
    other.append(["pat@example.com", "Partner Ltd"])
    path = tmp_path / "book.xlsx"
    book.save(path)

    preview = inspect_file(session, owner, path)
    assert preview.sheets == ["Leads", "Partners"] and preview.sheet == "Leads"
    result = import_contacts(sessions_on(session), owner, path)
    assert (result.created, result.invalid) == (1, 1)
    assert error_rows(result)[0]["line"] == "3"
    lea = contacts(session, owner)["lea@example.com"]
    assert lea.custom_fields == {"signed_up": "2024-05-01", "seats": 3}

    result = import_contacts(sessions_on(session), owner, path, ImportOptions(sheet="Partners"))
    assert result.created == 1
    assert contacts(session, owner)["pat@example.com"].company == "Partner Ltd"
    with pytest.raises(UnreadableFile, match="no sheet"):
        import_contacts(sessions_on(session), owner, path, ImportOptions(sheet="Nope"))


def test_existing_contacts_skipped_or_updated_never_resubscribed(session, owner, tmp_path):
    ws_id = owner.workspace_id
    workspace = type("W", (), {"id": ws_id})
    make_contact(session, workspace, email="gone@example.com", status="unsubscribed", city="Old")
    make_contact(session, workspace, email="keep@example.com", first_name="Keep", city="Old")
    session.add(Suppression(workspace_id=ws_id, email="blocked@example.com", reason="complaint"))
    session.flush()
    data = (
        "email,first_name,city\nGONE@example.com,Gone,New\nkeep@example.com,,New\n"
        "blocked@example.com,Blocked,X\n"
    )
    path = write(tmp_path, "again.csv", data.encode())
    result = import_contacts(sessions_on(session), owner, path)
    assert (result.created, result.updated, result.skipped) == (1, 0, 2)
    assert {r["reason"] for r in error_rows(result)} == {"already a contact; not updated"}
    found = contacts(session, owner)
    assert found["blocked@example.com"].status == "complained"
    assert found["gone@example.com"].city == "Old"

    result = import_contacts(sessions_on(session), owner, path, ImportOptions(update_existing=True))
    assert (result.created, result.updated, result.skipped) == (0, 3, 0)
    session.expire_all()
    found = contacts(session, owner)
    assert found["gone@example.com"].status == "unsubscribed"
    assert found["gone@example.com"].city == "New"
    assert found["keep@example.com"].first_name == "Keep", "empty cells do not wipe values"
    assert found["blocked@example.com"].status == "complained"


def test_custom_field_updates_merge_and_explicit_mapping(session, owner, tmp_path):
    create_custom_field(session, owner, "plan", "Plan", "text")
    first = write(tmp_path, "a.csv", b"email,plan,score\nm@example.com,gold,1\n")
    import_contacts(sessions_on(session), owner, first)
    second = write(tmp_path, "b.csv", b"mail,level,ignored\nm@example.com,platinum,zzz\n")
    options = ImportOptions(
        mapping={"mail": "email", "level": "custom:plan", "ignored": ""}, update_existing=True
    )
    result = import_contacts(sessions_on(session), owner, second, options)
    assert result.updated == 1 and result.new_fields == []
    session.expire_all()
    assert contacts(session, owner)["m@example.com"].custom_fields == {
        "plan": "platinum",
        "score": 1,
    }


def test_unreadable_files_change_nothing(session, owner, tmp_path):
    for name, data, message in [
        ("empty.csv", b"", "empty"),
        ("noemail.csv", b"name,city\nA,B\n", "email"),
        ("broken.xlsx", b"PK\x03\x04not really a zip", "xlsx"),
    ]:
        with pytest.raises(UnreadableFile, match=message):
            import_contacts(
                sessions_on(session),
                owner,
                write(tmp_path, name, data),
                ImportOptions(list_name="x"),
            )
    with pytest.raises(UnreadableFile, match="no file"):
        import_contacts(sessions_on(session), owner, tmp_path / "missing.csv")
    assert contacts(session, owner) == {}
    assert field_types(session, owner) == {}
    assert find_list(session, owner, "x") is None


def test_the_import_commits_each_chunk_in_a_session_of_its_own(live_db, tmp_path, monkeypatch):
    """It takes a session factory because it commits once per chunk: a failure in the third
    chunk keeps the two chunks written before it."""
    with session_scope() as s:
        owner = actor_of(make_user(s, make_workspace(s)))
    lines = ["email"] + [f"u{i}@example.com" for i in range(230)]
    path = write(tmp_path, "many.csv", "\n".join(lines).encode())
    real_write, written = _ChunkWriter._write, []

    def write_chunk(self, block, checked):
        written.append(len(checked.emails))
        if len(written) == 3:
            raise RuntimeError("disk full")
        real_write(self, block, checked)

    monkeypatch.setattr(_ChunkWriter, "_write", write_chunk)
    opened = []

    def sessions():
        opened.append(get_sessionmaker()())
        return opened[-1]

    with pytest.raises(RuntimeError, match="disk full"):
        import_contacts(sessions, owner, path, chunk_rows=50, workers=0)
    assert len(opened) == 1 and written == [50, 50, 50]
    with session_scope() as s:
        assert len(contacts(s, owner)) == 100


def test_workspace_isolation(session, tmp_path):
    mine = actor_of(make_user(session, make_workspace(session)))
    theirs_ws = make_workspace(session)
    theirs = actor_of(make_user(session, theirs_ws))
    make_contact(session, theirs_ws, email="shared@example.com", status="bounced")
    path = write(tmp_path, "x.csv", b"email\nshared@example.com\n")
    result = import_contacts(sessions_on(session), mine, path, ImportOptions(list_name="Mine"))
    assert result.created == 1
    assert contacts(session, mine)["shared@example.com"].status == "subscribed"
    assert contacts(session, theirs)["shared@example.com"].status == "bounced"
    assert find_list(session, theirs, "Mine") is None


def test_chunks_give_the_same_result(session, owner, tmp_path):
    lines = ["email,first_name"] + [f"u{i}@example.com,U{i}" for i in range(230)]
    lines += ["u7@example.com,dup", "bad", ""]
    path = write(tmp_path, "many.csv", "\n".join(lines).encode())
    seen = []
    result = import_contacts(
        sessions_on(session),
        owner,
        path,
        chunk_rows=50,
        progress=lambda done, total: seen.append(done),
    )
    assert (result.created, result.duplicates, result.invalid, result.rows) == (230, 1, 1, 232)
    assert seen == sorted(set(seen)) and seen[-1] == 232 and len(seen) >= 2
    assert len(contacts(session, owner)) == 230


def test_fast_email_path_agrees_with_email_validator():
    rng = random.Random(7)
    alphabet = string.ascii_lowercase + string.digits + "._+-@!#"
    samples = [
        "a@b.co",
        "x.y+z@sub.example.com",
        "a..b@example.com",
        ".a@example.com",
        "a@example.local",
        "a@localhost",
        "a@1.2.3.4",
        "a@ex-.com",
        "a@-ex.com",
        "a@ex--ample.com",
        f"{'a' * 65}@example.com",
        f"a@{'b' * 64}.com",
        "a@b.c",
        "A@EXAMPLE.COM ",
        "a b@example.com",
        "Ünï@example.com",
        "a@bücher.de",
    ]
    samples += ["".join(rng.choice(alphabet) for _ in range(rng.randint(3, 20))) + ".com"]
    samples += [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 10)))
        + "@"
        + "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 10)))
        + rng.choice([".com", ".io", ".de", ".x1", ".test", ""])
        for _ in range(3000)
    ]
    for raw in samples:
        ours, reason = check_email(raw)
        try:
            expected = validate_email(raw.strip().lower(), check_deliverability=False)
        except EmailNotValidError:
            assert reason and not ours, raw
        else:
            assert ours == expected.normalized.lower() and not reason, raw


def test_nul_bytes_overlong_fields_and_clashing_headers(session, owner, tmp_path):
    long_name = "x" * 201
    data = (
        f"email,first_name,Plan,plan\nn\x00ul@example.com,Nu\x00ll,a,b\nlong@example.com,{long_name},c,d\n"
    ).encode()
    result = import_contacts(sessions_on(session), owner, write(tmp_path, "odd.csv", data))
    assert (result.created, result.invalid) == (1, 1)
    assert "first_name is longer than 200" in error_rows(result)[0]["reason"]
    contact = contacts(session, owner)["nul@example.com"]
    assert contact.first_name == "Null"
    assert contact.custom_fields == {"plan": "a", "plan_2": "b"}


def _reference_rows(path, encoding: str, delimiter: str) -> list[tuple[int, list[str]]]:
    """Rows as one csv.reader over the whole file numbers them (the importer used to)."""
    out = []
    with open(path, encoding=encoding, newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header, last = None, 0
        while header is None:
            record = next(reader)
            last = reader.line_num
            header = record if any(c.strip() for c in record) else None
        while True:
            start = last + 1
            try:
                record = next(reader)
            except StopIteration:
                return out
            except csv.Error as exc:
                out.append((start, [f"\x00{exc}"]))
            else:
                out.append((start, record))
            last = reader.line_num


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.text(alphabet='ab,;"\n\r é\t', max_size=120))
def test_records_cut_the_file_as_one_csv_reader_would(tmp_path, body):
    path = tmp_path / "fuzz.csv"
    path.write_bytes(("email,name,city\n" + body).encode())
    source = open_table(path)
    records = list(source.records)
    source.close()
    expected = _reference_rows(path, source.encoding, source.delimiter)
    # One reader over a whole block of records, as a worker parses them.
    cells = list(_parse_items([item for _, item in records], source.delimiter, source.nul))
    assert list(zip([line for line, _ in records], cells, strict=True)) == expected
    source = open_table(path)
    assert list(source.rows) == expected
    source.close()


TRICKY = (
    "Email,First Name,Notes,Tier,Score\n"
    + "".join(
        f'u{i}@example.com,U{i},"two\nlines, {i}",{"gold" if i % 3 else ""},{i}\n'
        if i % 7 == 0
        else f"U{i % 150}@Example.com,Dup{i},,silver,{i}\n"
        if i % 11 == 0
        else f"bad{i}@@x,B,,,{i}\n"
        if i % 13 == 0
        else f'u{i}@example.com,"Q ""{i}""",x\ty,,{"oops" if i % 17 == 0 else i}\n'
        if i % 5 == 0
        else f"u{i}@example.com,U{i},a\\b,,{i},extra{i}\n"
        if i % 19 == 0
        else "\n"
        if i % 23 == 0
        else f"u{i}@example.com,U{i},,,{i}\n"
        for i in range(400)
    )
    + '"unterminated@example.com,Open,"quote\n'
)


def test_worker_processes_give_the_same_result(session, tmp_path, monkeypatch):
    # Threads that earlier tests left behind would make the import check rows itself.
    monkeypatch.setattr("core.contacts.importing.write.threading.active_count", lambda: 1)
    path = write(tmp_path, "tricky.csv", TRICKY.encode())
    outcomes = []
    for workers in (0, 2):
        actor = actor_of(make_user(session, make_workspace(session)))
        options = ImportOptions(
            list_name="Fair", new_fields={"tier": ("Tier", "text"), "score": ("Score", "number")}
        )
        result = import_contacts(
            sessions_on(session), actor, path, options, chunk_rows=37, workers=workers
        )
        assert result.workers == workers
        found = {
            email: (c.first_name, c.custom_fields, c.status)
            for email, c in contacts(session, actor).items()
        }
        members = session.scalar(
            select(func.count())
            .select_from(ListMembership)
            .where(ListMembership.list_id == find_list(session, actor, "Fair").id)
        )
        summary = {k: v for k, v in result.to_dict().items() if k not in ("seconds", "workers")}
        summary.pop("errors_file")
        outcomes.append((summary, error_rows(result), found, members))
    assert outcomes[0] == outcomes[1]
    summary, errors, found, members = outcomes[0]
    assert summary["created"] == len(found) == members > 250
    assert summary["duplicates"] > 0 and summary["invalid"] > 0
    assert found["u5@example.com"][0] == 'Q "5"'
    assert any("unreadable" in e["reason"] or "fields" in e["reason"] for e in errors)


def test_no_worker_processes_beside_other_threads(session, owner, tmp_path, monkeypatch):
    # Forking while other threads run (Streamlit) is unsafe: the rows are checked here.
    monkeypatch.setattr("core.contacts.importing.write.threading.active_count", lambda: 3)
    path = write(tmp_path, "tricky.csv", TRICKY.encode())
    result = import_contacts(sessions_on(session), owner, path, chunk_rows=100, workers=2)
    assert result.workers == 0 and result.created > 250


def _die(block):
    os._exit(3)


def test_a_worker_process_that_dies_fails_the_import(session, owner, tmp_path, monkeypatch):
    monkeypatch.setattr("core.contacts.importing.write.threading.active_count", lambda: 1)
    monkeypatch.setattr("core.contacts.importing.write._check_block", _die)
    path = write(tmp_path, "tricky.csv", TRICKY.encode())
    with pytest.raises(BrokenProcessPool):
        import_contacts(sessions_on(session), owner, path, chunk_rows=100, workers=2)
    assert contacts(session, owner) == {}


@pytest.mark.parametrize("created_meanwhile", [False, True])
def test_existing_contact_in_a_later_chunk(
    session, owner, tmp_path, monkeypatch, created_meanwhile
):
    # On PostgreSQL chunks are copied straight in; from the chunk that meets an existing
    # contact on, addresses are looked up first, and a chunk whose copy still meets one
    # (created meanwhile: the lookup is made to miss it) is merged. Same outcome each way.
    if created_meanwhile:
        monkeypatch.setattr(
            "core.contacts.importing.stage._Stager.existing", lambda self, emails: set()
        )
    workspace = type("W", (), {"id": owner.workspace_id})
    make_contact(session, workspace, email="u150@example.com", status="unsubscribed", city="Old")
    session.add(
        Suppression(workspace_id=owner.workspace_id, email="u20@example.com", reason="bounce")
    )
    session.flush()
    lines = ["email,first_name,city"] + [f"u{i}@example.com,U{i},C{i}" for i in range(300)]
    path = write(tmp_path, "later.csv", "\n".join(lines).encode())
    result = import_contacts(
        sessions_on(session), owner, path, ImportOptions(list_name="All"), chunk_rows=100, workers=0
    )
    assert (result.created, result.skipped, result.invalid) == (299, 1, 0)
    assert [(r["line"], r["reason"]) for r in error_rows(result)] == [
        ("152", "already a contact; not updated")
    ]
    found = contacts(session, owner)
    assert len(found) == 300
    assert (found["u150@example.com"].status, found["u150@example.com"].city) == (
        "unsubscribed",
        "Old",
    )
    assert found["u20@example.com"].status == "bounced"
    assert found["u299@example.com"].city == "C299"
    members = session.scalar(
        select(func.count())
        .select_from(ListMembership)
        .where(ListMembership.list_id == find_list(session, owner, "All").id)
    )
    assert members == 300


def test_time_zone_column_with_a_bad_zone_row(session, owner, tmp_path):
    data = (
        b"Email,Name,Time zone\n"
        b"ann@example.com,Ann,Asia/Kolkata\n"
        b"bob@example.com,Bob,Mars/Olympus\n"
        b"cy@example.com,Cy,america/new_york\n"
        b"dee@example.com,Dee,\n"
    )
    path = write(tmp_path, "zones.csv", data)
    preview = inspect_file(session, owner, path)
    assert preview.mapping["Time zone"] == "timezone"
    assert zone_guess_offer(preview, preview.mapping) is None  # no country column
    result = import_contacts(sessions_on(session), owner, path, ImportOptions())
    found = contacts(session, owner)
    assert {e: c.timezone for e, c in found.items()} == {
        "ann@example.com": "Asia/Kolkata",
        "cy@example.com": "America/New_York",  # spelled in any case
        "dee@example.com": None,  # blank: no zone (the workspace's is used)
    }
    assert (result.created, result.invalid) == (3, 1)
    (bad,) = error_rows(result)
    assert bad["line"] == "3" and "'Mars/Olympus' is not a time zone" in bad["reason"]
    # "tz" is a time-zone header too.
    assert (
        inspect_file(session, owner, write(tmp_path, "tz.csv", b"email,tz\na@b.co,UTC\n")).mapping[
            "tz"
        ]
        == "timezone"
    )


def test_country_guess_is_offered_and_used_only_when_chosen(session, owner, tmp_path):
    data = (
        b"email,country\n"
        b"in@example.com,IN\n"
        b"us@example.com,United States\n"
        b"de@example.com,germany\n"
        b"xx@example.com,Atlantis\n"
    )
    path = write(tmp_path, "countries.csv", data)
    preview = inspect_file(session, owner, path)
    offer = zone_guess_offer(preview, preview.mapping)
    assert offer is not None and offer.country_column == "country"
    assert [c.name for c in offer.several] == ["United States"]  # India and Germany: one clock
    assert "A guess" in offer.note and "United States (" in offer.note
    assert "America/New_York is used" in offer.note
    # Not chosen: no zone is set.
    import_contacts(sessions_on(session), owner, path, ImportOptions())
    assert {c.timezone for c in contacts(session, owner).values()} == {None}
    # Chosen (updating the same contacts): the country's principal zone.
    options = ImportOptions(update_existing=True, guess_timezone=True)
    import_contacts(sessions_on(session), owner, path, options)
    session.expire_all()
    assert {e: c.timezone for e, c in contacts(session, owner).items()} == {
        "in@example.com": "Asia/Kolkata",
        "us@example.com": "America/New_York",
        "de@example.com": "Europe/Berlin",
        "xx@example.com": None,
    }
    # A time-zone column in the file: nothing to guess.
    assert zone_guess_offer(preview, {"email": "email", "country": "timezone"}) is None
