"""The contacts page through app.py with AppTest (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import select

from core.infra.db import get_sessionmaker, session_scope
from core.models import AuditLog, Contact, ContactList, CustomField, User, Workspace
from tests.apptest_db import seed_user
from tests.helpers import make_contact
from tests.pages.apptest import by_label, new_app, sign_in, texts


def _open_contacts(role: str = "owner", contacts: int = 120):
    email = seed_user(role=role)
    with session_scope() as session:
        ws = session.scalar(select(Workspace).where(Workspace.slug == "acme"))
        for i in range(contacts):
            make_contact(
                session,
                ws,
                email=f"c{i:03d}@example.com",
                first_name="Nina" if i == 7 else "Tom",
                status="unsubscribed" if i == 3 else "subscribed",
            )
    at = sign_in(new_app(), email)
    at.switch_page("pages/contacts.py").run()
    assert not at.exception, at.exception
    return at


def test_table_pages_searches_and_filters(live_db):
    at = _open_contacts()
    assert "120 contacts · page 1 of 3" in texts(at)
    at.selectbox(key="ct_page_size").select(100).run()
    assert "120 contacts · page 1 of 2" in texts(at)
    at.number_input(key="ct_page").set_value(2).run()
    assert "page 2 of 2" in texts(at)
    frame = at.dataframe[0].value
    assert len(frame) == 20
    at.text_input(key="ct_search").input("nina").run()
    assert "1 contact · page 1 of 1" in texts(at)
    assert list(at.dataframe[0].value["Email"]) == ["c007@example.com"]
    at.text_input(key="ct_search").input("").run()
    at.multiselect(key="ct_statuses").select("unsubscribed").run()
    assert list(at.dataframe[0].value["Email"]) == ["c003@example.com"]


def test_add_edit_resubscribe_with_confirmation_and_bulk_delete(live_db):
    at = _open_contacts(contacts=5)
    by_label(at.text_input, "Key").input("score")
    by_label(at.text_input, "Label").input("Score")
    by_label(at.selectbox, "Type").select("number")
    by_label(at.button, "Create field").click().run()
    assert "Created the field score." in texts(at)

    at.text_input(key="add_email").input("New.Person@Example.com")
    at.text_input(key="add_first_name").input("New")
    at.number_input(key="add_cf_score").set_value(42)
    by_label(at.button, "Add contact").click().run()
    assert "Added new.person@example.com (subscribed)." in texts(at)

    with session_scope() as session:
        opened = session.scalar(select(Contact.id).where(Contact.email == "c003@example.com"))
    at.selectbox(key="ct_open").select(opened).run()
    at.selectbox(key=f"edit{opened}_status").select("subscribed")
    by_label(at.button, "Save changes").click().run()
    assert "explicit confirmation" in texts(at)
    at.checkbox(key=f"edit{opened}_resub").check()
    by_label(at.button, "Save changes").click().run()
    assert "Saved c003@example.com (subscribed)." in texts(at)
    with session_scope() as session:
        assert (
            session.scalar(select(Contact.status).where(Contact.email == "c003@example.com"))
            == "subscribed"
        )
        audit = session.scalar(select(AuditLog).where(AuditLog.action == "contact.resubscribe"))
        assert audit.detail["previous"] == "unsubscribed" and audit.user_id is not None
        assert session.scalar(
            select(Contact.custom_fields).where(Contact.email == "new.person@example.com")
        ) == {"score": 42}

    at.checkbox(key="ct_all").check().run()
    at.selectbox(key="ct_action").select("Delete").run()
    at.checkbox(key="ct_bulk_delete_ok").check()
    by_label(at.button, "Apply to selected").click().run()
    assert "Deleted 6 contact(s)." in texts(at)
    assert "0 contacts" in texts(at)


def test_lists_and_viewer_cannot_change(live_db):
    at = _open_contacts(contacts=2)
    by_label(at.text_input, "List name").input("Customers")
    by_label(at.button, "Create list").click().run()
    assert "Created the list Customers." in texts(at)
    with session_scope() as session:
        assert session.scalar(select(ContactList.name)) == "Customers"

    viewer = sign_in(new_app(), seed_user(role="viewer"))
    viewer.switch_page("pages/contacts.py").run()
    assert "2 contacts" in texts(viewer)
    by_label(viewer.text_input, "Key").input("plan")
    by_label(viewer.button, "Create field").click().run()
    assert "Your role (viewer) does not allow this" in texts(viewer)
    with session_scope() as session:
        assert session.scalar(select(CustomField.id)) is None


def test_import_in_the_page_inline_and_as_a_job(live_db, monkeypatch, enqueued):
    from core.contacts.importing import run_import_job
    from core.infra.config import settings
    from core.models import Job

    at = _open_contacts(contacts=1)
    data = "E-mail;Vorname;Punkte\nivy@example.com;Ivy;5\nbroken;X;1\nc000@example.com;Old;2\n"
    at.file_uploader[0].set_value(("leads.csv", data.encode(), "text/csv")).run()
    assert not at.exception, at.exception
    assert "delimiter ';'" in texts(at)
    assert at.selectbox(key="imp_map_E-mail").value == "email"
    assert at.selectbox(key="imp_map_Vorname").value == "first_name"
    assert at.selectbox(key="imp_type_Punkte").value == "number"
    by_label(at.button, "Import contacts").click().run()
    assert "Import finished." in texts(at)
    assert [m.value for m in at.metric][-4:] == ["1", "0", "1", "1"]
    with session_scope() as session:
        assert session.scalar(
            select(Contact.custom_fields).where(Contact.email == "ivy@example.com")
        ) == {"punkte": 5}
        assert (
            session.scalar(select(CustomField.type).where(CustomField.key == "punkte")) == "number"
        )

    monkeypatch.setattr(settings, "import_inline_max_rows", 1)
    at.file_uploader[0].set_value(
        ("more.csv", b"email\nj1@example.com\nj2@example.com\n", "text/csv")
    )
    at.run()
    by_label(at.button, "Import contacts").click().run()
    assert "runs in the background" in texts(at)
    assert [name for name, _, _ in enqueued] == ["worker.tasks_contacts.import_contacts"]
    run_import_job(get_sessionmaker(), enqueued[0][1][0])
    by_label(at.text_input, "Search email or name").input("j").run()
    assert "Import" in texts(at) and "done" in texts(at)
    with session_scope() as session:
        assert session.scalar(select(Job.status)) == "done"


def test_a_contacts_consent_record_and_its_export(live_db):
    at = _open_contacts(contacts=4)
    with session_scope() as session:
        opened = session.scalar(select(Contact.id).where(Contact.email == "c003@example.com"))
    at.selectbox(key="ct_open").select(opened).run()
    assert not at.exception, at.exception
    assert "No consent recorded for this contact." in [c.value for c in at.caption]
    at.selectbox(key=f"edit{opened}_status").select("subscribed")
    at.checkbox(key=f"edit{opened}_resub").check()
    by_label(at.button, "Save changes").click().run()
    at.selectbox(key="ct_open").select(opened).run()
    [consent] = [
        d.value for d in at.dataframe if "action" in d.value.columns and "source" in d.value.columns
    ]
    assert list(consent["action"]) == ["resubscribe"]
    assert list(consent["source"]) == ["changed by hand"]
    assert list(consent["by"]) == [_owner_email()]
    by_label(at.button, "Export consent of 4 contacts").click().run()
    assert not at.exception, at.exception
    assert at.session_state["ct_consent_csv"].decode("utf-8-sig").count("\n") == 2  # header + 1


def _owner_email() -> str:
    with session_scope() as session:
        return session.scalar(select(User.email).where(User.role == "owner"))
