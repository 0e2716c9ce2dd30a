"""The consent record everywhere (issue 17): after a form, an import, a manual change and an
unsubscribe (one-click and the page), read back as a contact's history and as CSV."""

from __future__ import annotations

import csv
import io
import time

import pytest
from sqlalchemy import select

from core.contacts import export as exporter
from core.contacts import service as book
from core.contacts.importing import ImportOptions, import_contacts
from core.contacts.service import ContactFilter, ContactInput
from core.forms import signup
from core.forms.service import STAMP, FormInput, create_form
from core.infra.errors import ValidationFailed
from core.ingest import own
from core.models import Consent, Contact, ContactList, Workspace
from tests.helpers import actor_of, make_contact, make_user, make_workspace, sessions_on


@pytest.fixture
def owner(session):
    return actor_of(make_user(session, make_workspace(session, name="Acme")))


def _rows(session, contact_id) -> list[tuple[str, str, str]]:
    return [
        (r.action, r.source, r.source_detail)
        for r in session.scalars(
            select(Consent).where(Consent.contact_id == contact_id).order_by(Consent.id)
        )
    ]


def _csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def test_import_records_the_file_and_the_user_set_based(session, owner, tmp_path):
    news = ContactList(workspace_id=owner.workspace_id, name="News", visibility="public")
    session.add(news)
    session.flush()
    ws = session.get(Workspace, owner.workspace_id)
    known = make_contact(session, ws, email="known@example.com")
    gone = make_contact(session, ws, email="gone@example.com", status="unsubscribed")
    path = tmp_path / "upload-1234.csv"
    path.write_text("email\nnew@example.com\nknown@example.com\ngone@example.com\n")
    options = ImportOptions(list_id=news.id, file_name="fair 2026.csv")
    result = import_contacts(sessions_on(session), owner, path, options)
    assert result.created == 1
    new = session.scalar(select(Contact).where(Contact.email == "new@example.com"))
    for contact in (new, known):
        (row,) = session.scalars(select(Consent).where(Consent.contact_id == contact.id))
        assert (row.action, row.source, row.source_detail) == (
            "subscribe",
            "import",
            "fair 2026.csv",
        )
        assert (row.user_id, row.list_ids) == (owner.user_id, [news.id])
    # An unsubscribed contact put on the list is not subscribed: nothing recorded.
    assert _rows(session, gone.id) == []
    # Without a file name and a list: the path's name, all mail.
    path2 = tmp_path / "more.csv"
    path2.write_text("email\nsecond@example.com\nknown@example.com\n")
    import_contacts(sessions_on(session), owner, path2)
    second = session.scalar(select(Contact).where(Contact.email == "second@example.com"))
    (row,) = session.scalars(select(Consent).where(Consent.contact_id == second.id))
    assert (row.source_detail, row.list_ids) == ("more.csv", [])
    assert len(_rows(session, known.id)) == 1  # known again, not re-subscribed


def test_manual_changes_name_the_user(session, owner):
    added = book.create_contact(session, owner, ContactInput(email="ann@example.com"))
    assert _rows(session, added.id) == [("subscribe", "manual", "added by hand")]
    book.set_status(session, owner, [added.id], "unsubscribed")
    book.set_status(session, owner, [added.id], "subscribed", confirm_resubscribe=True)
    book.set_status(session, owner, [added.id], "bounced")
    assert [a for a, _, _ in _rows(session, added.id)] == [
        "subscribe",
        "unsubscribe",
        "resubscribe",
        "unsubscribe",
    ]
    users = set(session.scalars(select(Consent.user_id).where(Consent.contact_id == added.id)))
    assert users == {owner.user_id}
    # A contact added unsubscribed gave no consent.
    other = book.create_contact(
        session, owner, ContactInput(email="bob@example.com", status="unsubscribed")
    )
    assert _rows(session, other.id) == []


def test_form_history_and_export_of_one_contact_and_a_filter(session, owner):
    news = ContactList(workspace_id=owner.workspace_id, name="News", visibility="public")
    session.add(news)
    session.flush()
    form = create_form(
        session,
        owner,
        FormInput(
            name="Footer", list_ids=[news.id], consent_text="=HYPERLINK(evil)", double_opt_in=False
        ),
    )
    data = {"email": "eve@example.com", STAMP: signup.fill_stamp(form.id, time.time() - 10)}
    signup.submit(session, form.id, data, ip="198.51.100.7", user_agent="Firefox")
    eve = session.scalar(select(Contact).where(Contact.email == "eve@example.com"))
    own.unsubscribe(session, owner, eve.id, None, via="page", ip="203.0.113.9")
    history = exporter.contact_consent(session, owner, eve.id)
    assert [(r["action"], r["source"], r["lists"]) for r in history] == [
        ("subscribe", "form", "News"),
        ("unsubscribe", "one-click", ""),
    ]
    assert history[1]["source_detail"] == "unsubscribe page"
    assert history[1]["ip"] == "203.0.113.9"
    (first, second) = _csv(exporter.consent_csv(session, owner, contact_id=eve.id))
    assert first["email"] == "eve@example.com" and first["ip"] == "198.51.100.7"
    assert first["consent_text"] == "'=HYPERLINK(evil)"  # a spreadsheet will not run it
    assert second["action"] == "unsubscribe"
    # A filter: everyone unsubscribed; past the size limit, a clear refusal.
    book.create_contact(session, owner, ContactInput(email="sub@example.com"))
    rows = _csv(exporter.consent_csv(session, owner, flt=ContactFilter(statuses=("unsubscribed",))))
    assert {r["email"] for r in rows} == {"eve@example.com"}
    with pytest.raises(ValidationFailed, match="narrow the filter"):
        exporter.consent_csv(session, owner, flt=ContactFilter(), max_rows=2)
    # Another workspace sees nothing of it.
    stranger = actor_of(make_user(session, make_workspace(session)))
    assert exporter.contact_consent(session, stranger, eve.id) == []
