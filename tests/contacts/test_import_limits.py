"""Uploads that would exhaust the machine are refused with a clear message and change
nothing (issue 14.5)."""

from __future__ import annotations

import zipfile

import openpyxl
import pytest
from sqlalchemy import func, select

from core.contacts.importing import (
    MAX_COLUMNS,
    UnreadableFile,
    import_contacts,
    inspect_file,
    save_upload,
)
from core.infra.config import settings
from core.infra.errors import PermissionDenied
from core.models import Contact, CustomField
from tests.helpers import actor_of, make_user, make_workspace, sessions_on


def _workbook(path, rows) -> None:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    book.save(path)


def test_an_upload_over_the_limit_is_refused(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(settings, "max_upload_mb", 0.001)
    with pytest.raises(UnreadableFile, match="MAX_UPLOAD_MB"):
        save_upload("big.csv", b"x" * 2000)


def test_a_cell_that_unpacks_like_a_bomb_is_refused_before_it_is_read(session, tmp_path):
    owner = actor_of(make_user(session, make_workspace(session)))
    plain, path = tmp_path / "plain.xlsx", tmp_path / "bomb.xlsx"
    _workbook(plain, [["email", "note"], ["a@example.com", "short"]])
    # Excel caps a cell at 32,767 characters; a hand-made part can hold any length.
    huge = b'<c r="B2" t="inlineStr"><is><t>' + b"a" * 5_000_000 + b"</t></is></c>"
    sheet = (
        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        b'<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>email</t></is></c></row>'
        b'<row r="2"><c r="A2" t="inlineStr"><is><t>a@example.com</t></is></c>'
        + huge
        + b"</row></sheetData></worksheet>"
    )
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for item in src.infolist():
            data = sheet if item.filename == "xl/worksheets/sheet1.xml" else src.read(item)
            out.writestr(item.filename, data, zipfile.ZIP_DEFLATED)
    with pytest.raises(UnreadableFile, match="not an ordinary spreadsheet"):
        inspect_file(session, owner, path)
    with pytest.raises(UnreadableFile):
        import_contacts(sessions_on(session), owner, path)
    assert session.scalar(select(func.count()).select_from(Contact)) == 0


def test_a_workbook_that_unpacks_past_the_limit_is_refused(
    session, tmp_path, monkeypatch: pytest.MonkeyPatch
):
    owner = actor_of(make_user(session, make_workspace(session)))
    path = tmp_path / "wide.xlsx"
    _workbook(path, [["email"], *[[f"r{i}@example.com"] for i in range(2000)]])
    monkeypatch.setattr(settings, "max_xlsx_unpacked_mb", 0.01)
    with pytest.raises(UnreadableFile, match="MAX_XLSX_UNPACKED_MB"):
        inspect_file(session, owner, path)


def test_a_workbook_with_a_document_type_is_unreadable_not_a_traceback(session, tmp_path):
    owner = actor_of(make_user(session, make_workspace(session)))
    plain, hostile = tmp_path / "plain.xlsx", tmp_path / "dtd.xlsx"
    _workbook(plain, [["email"], ["a@example.com"]])
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(hostile, "w") as out:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                lol = b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
                data = data.replace(b"<worksheet", lol + b"<worksheet", 1)
            out.writestr(item, data)
    with pytest.raises(UnreadableFile, match="document type"):
        inspect_file(session, owner, hostile)


def test_ten_thousand_columns_create_no_fields(session, tmp_path):
    owner = actor_of(make_user(session, make_workspace(session)))
    path = tmp_path / "wide.csv"
    header = ["email"] + [f"c{i}" for i in range(10_000)]
    path.write_text(",".join(header) + "\n" + "a@example.com" + "," * 10_000 + "\n")
    with pytest.raises(UnreadableFile, match=f"at most {MAX_COLUMNS}"):
        import_contacts(sessions_on(session), owner, path)
    assert session.scalar(select(func.count()).select_from(CustomField)) == 0


def test_a_viewer_cannot_make_the_server_read_an_upload(session, tmp_path):
    ws = make_workspace(session)
    viewer = actor_of(make_user(session, ws, role="viewer"))
    path = tmp_path / "c.csv"
    path.write_text("email\na@example.com\n")
    with pytest.raises(PermissionDenied):
        inspect_file(session, viewer, path)


def test_an_over_long_cell_is_a_row_error_and_the_other_rows_import(session, tmp_path):
    owner = actor_of(make_user(session, make_workspace(session)))
    plain, path = tmp_path / "plain.xlsx", tmp_path / "long.xlsx"
    _workbook(plain, [["email"], ["a@example.com"]])
    long_cell = b"<c r='B2' t='inlineStr'><is><t>" + b"x" * 200_000 + b"</t></is></c>"
    sheet = (
        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        b'<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>email</t></is></c>'
        b'<c r="B1" t="inlineStr"><is><t>note</t></is></c></row>'
        b"<row r='2'><c r='A2' t='inlineStr'><is><t>long@example.com</t></is></c>"
        + long_cell
        + b"</row><row r='3'><c r='A3' t='inlineStr'><is><t>ok@example.com</t></is></c></row>"
        b"</sheetData></worksheet>"
    )
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for item in src.infolist():
            data = sheet if item.filename == "xl/worksheets/sheet1.xml" else src.read(item)
            out.writestr(item.filename, data, zipfile.ZIP_DEFLATED)
    result = import_contacts(sessions_on(session), owner, path)
    emails = set(session.scalars(select(Contact.email)))
    assert emails == {"ok@example.com"}
    assert result.invalid == 1
    assert [(line, "longer than" in why) for line, _raw, why in result.errors] == [(2, True)]
