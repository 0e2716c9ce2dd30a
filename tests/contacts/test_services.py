"""Contacts, custom fields, lists and export at the service level (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from core.campaigns.service import delete_campaign
from core.contacts.export import export_contacts, neutralize
from core.contacts.fields import (
    count_field_values,
    create_custom_field,
    delete_custom_field,
    list_custom_fields,
    rename_custom_field,
)
from core.contacts.lists import add_members, create_list, delete_list, list_lists, remove_members
from core.contacts.service import (
    ConfirmationRequired,
    ContactFilter,
    ContactInput,
    contact_activity,
    create_contact,
    delete_contacts,
    get_contact,
    page_contacts,
    set_status,
    status_history,
    update_contact,
)
from core.infra import clock
from core.infra.errors import NotFound, PermissionDenied, ValidationFailed
from core.models import AuditLog, Campaign, Contact, Event, Message, Suppression
from tests.helpers import actor_of, make_contact, make_user, make_workspace


@pytest.fixture
def ws(session):
    return make_workspace(session)


@pytest.fixture
def owner(session, ws):
    return actor_of(make_user(session, ws))


def test_paging_search_filters_and_sort(session, ws, owner):
    other = make_workspace(session)
    make_contact(session, other, email="outsider@example.com", first_name="Zed")
    clock.freeze(datetime(2024, 1, 10, 12, tzinfo=UTC))
    people = [
        make_contact(
            session,
            ws,
            email=f"p{i:03d}@example.com",
            first_name="Zed" if i % 10 == 0 else "Ann",
            last_name=f"Last{i}",
            status="unsubscribed" if i % 3 == 0 else "subscribed",
            created_at=datetime(2024, 1, 1 + i % 20, tzinfo=UTC),
        )
        for i in range(130)
    ]
    vip = create_list(session, owner, "VIP")
    add_members(session, owner, vip.id, [p.id for p in people[:7]])

    first = page_contacts(session, owner, page_size=50, sort="email", descending=False)
    assert first.total == 130 and first.pages == 3 and len(first.rows) == 50
    assert first.rows[0].email == "p000@example.com"
    last = page_contacts(session, owner, page=3, page_size=50, sort="email", descending=False)
    assert len(last.rows) == 30 and last.rows[-1].email == "p129@example.com"
    assert page_contacts(session, owner, page=99).page == 3

    zed = page_contacts(session, owner, ContactFilter(search="zed"), page_size=100)
    assert zed.total == 13 and all(c.workspace_id == ws.id for c in zed.rows)
    full_name = page_contacts(session, owner, ContactFilter(search="zed last100"))
    assert [c.email for c in full_name.rows] == ["p100@example.com"]
    assert page_contacts(session, owner, ContactFilter(search="p00%")).total == 0
    exact = page_contacts(session, owner, ContactFilter(search=" P042@Example.com "))
    assert [c.email for c in exact.rows] == ["p042@example.com"]
    assert page_contacts(session, owner, ContactFilter(search="p04")).total == 10

    unsub = page_contacts(session, owner, ContactFilter(statuses=("unsubscribed",)))
    assert unsub.total == 44
    in_vip = page_contacts(session, owner, ContactFilter(list_id=vip.id))
    assert in_vip.total == 7
    dated = ContactFilter(created_from=date(2024, 1, 1), created_to=date(2024, 1, 2))
    assert page_contacts(session, owner, dated).total == 14
    newest = page_contacts(session, owner, sort="created_at", descending=True)
    assert newest.rows[0].created_at.day == 20
    with pytest.raises(ValidationFailed):
        page_contacts(session, owner, page_size=70)


def test_add_edit_and_resubscribe_needs_confirmation(session, ws, owner):
    create_custom_field(session, owner, "score", "Score", "number")
    create_custom_field(session, owner, "since", "Since", "date")
    news = create_list(session, owner, "News")
    contact = create_contact(
        session,
        owner,
        ContactInput(
            email=" Eve@Example.com ",
            first_name="Eve",
            custom_fields={"score": "7", "since": "2024-02-03"},
            list_ids=[news.id],
        ),
    )
    assert contact.email == "eve@example.com" and contact.custom_fields == {
        "score": 7,
        "since": "2024-02-03",
    }
    with pytest.raises(ValidationFailed, match="already"):
        create_contact(session, owner, ContactInput(email="eve@example.com"))
    with pytest.raises(ValidationFailed, match="score"):
        update_contact(
            session,
            owner,
            contact.id,
            ContactInput(email="eve@example.com", custom_fields={"score": "many"}),
        )
    data = ContactInput(email="eve@example.com", first_name="Eve", status="bounced", list_ids=[])
    update_contact(session, owner, contact.id, data)
    assert contact.status == "bounced"
    session.add(Suppression(workspace_id=ws.id, email="eve@example.com", reason="bounce"))
    session.flush()
    data.status = "subscribed"
    with pytest.raises(ConfirmationRequired):
        update_contact(session, owner, contact.id, data)
    assert contact.status == "bounced"
    update_contact(session, owner, contact.id, data, confirm_resubscribe=True)
    assert contact.status == "subscribed"
    history = status_history(session, owner, contact.id)
    assert [h.action for h in history] == ["contact.resubscribe", "contact.status"]
    assert history[0].detail["previous"] == "bounced" and history[0].user_id == owner.user_id
    assert session.scalar(select(Suppression).where(Suppression.workspace_id == ws.id)) is None

    # Adding a suppressed address does not subscribe it.
    session.add(Suppression(workspace_id=ws.id, email="stop@example.com", reason="unsubscribe"))
    session.flush()
    stop = create_contact(session, owner, ContactInput(email="stop@example.com"))
    assert stop.status == "unsubscribed"


def test_bulk_status_delete_permissions_and_isolation(session, ws, owner):
    a = make_contact(session, ws, status="unsubscribed")
    b = make_contact(session, ws)
    outsider = make_contact(session, make_workspace(session))
    with pytest.raises(ConfirmationRequired):
        set_status(session, owner, [a.id, b.id], "subscribed")
    assert set_status(session, owner, [a.id, b.id, outsider.id], "complained") == 2
    assert outsider.status == "subscribed"
    viewer = actor_of(make_user(session, ws, role="viewer"))
    with pytest.raises(PermissionDenied):
        delete_contacts(session, viewer, [a.id])
    with pytest.raises(NotFound):
        get_contact(session, owner, outsider.id)
    assert delete_contacts(session, owner, [a.id, b.id, outsider.id]) == 2
    assert session.get(Contact, outsider.id) is not None
    assert session.scalar(select(AuditLog.action).where(AuditLog.action == "contact.delete"))


def test_custom_fields_crud_counts_values(session, ws, owner):
    field = create_custom_field(session, owner, "plan", "Plan", "text")
    with pytest.raises(ValidationFailed):
        create_custom_field(session, owner, "Plan!", "Plan", "text")
    with pytest.raises(ValidationFailed):
        create_custom_field(session, owner, "plan", "Again", "text")
    with pytest.raises(ValidationFailed):
        create_custom_field(session, owner, "email", "Email", "text")
    with pytest.raises(ValidationFailed):
        create_custom_field(session, owner, "x", "X", "color")
    make_contact(session, ws, custom_fields={"plan": "gold", "other": 1})
    make_contact(session, ws, custom_fields={"plan": "silver"})
    make_contact(session, ws, custom_fields={})
    make_contact(session, make_workspace(session), custom_fields={"plan": "theirs"})
    rename_custom_field(session, owner, field.id, "Plan tier")
    assert [f.label for f in list_custom_fields(session, owner)] == ["Plan tier"]
    assert count_field_values(session, owner, "plan") == 2
    assert delete_custom_field(session, owner, field.id) == 2
    session.expire_all()
    values = [
        c.custom_fields
        for c in session.scalars(select(Contact).where(Contact.workspace_id == ws.id))
    ]
    assert sorted(map(str, values)) == ["{'other': 1}", "{}", "{}"]
    assert list_custom_fields(session, owner) == []


def test_lists_bulk_membership(session, ws, owner):
    people = [make_contact(session, ws) for _ in range(5)]
    outsider = make_contact(session, make_workspace(session))
    lst = create_list(session, owner, "Customers")
    with pytest.raises(ValidationFailed):
        create_list(session, owner, " Customers ")
    assert add_members(session, owner, lst.id, [p.id for p in people] + [outsider.id]) == 5
    assert add_members(session, owner, lst.id, [people[0].id]) == 0
    assert remove_members(session, owner, lst.id, [people[0].id, people[1].id]) == 2
    assert [(i.name, i.members) for i in list_lists(session, owner)] == [("Customers", 3)]
    delete_list(session, owner, lst.id)
    assert list_lists(session, owner) == []
    assert session.get(Contact, people[2].id) is not None


def _sent(session, campaign: Campaign, contact: Contact) -> Message:
    message = Message(
        workspace_id=campaign.workspace_id,
        campaign_id=campaign.id,
        contact_id=contact.id,
        email=contact.email,
        status="sent",
    )
    session.add(message)
    session.flush()
    return message


def _event(message: Message, contact_id: int | None, type_: str, key: str) -> Event:
    return Event(
        workspace_id=message.workspace_id,
        campaign_id=message.campaign_id,
        message_id=message.id,
        contact_id=contact_id,
        type=type_,
        url="https://x.example" if type_ == "click" else None,
        dedupe_key=key,
    )


def test_activity_shows_messages_and_events(session, ws, owner):
    contact = make_contact(session, ws)
    campaign = Campaign(workspace_id=ws.id, name="Spring", status="sent")
    session.add(campaign)
    session.flush()
    message = _sent(session, campaign, contact)
    for i, type_ in enumerate(["sent", "open", "click", "click"]):
        session.add(_event(message, contact.id, type_, f"k{contact.id}-{i}"))
    session.flush()
    activity = contact_activity(session, owner, contact.id)
    assert activity.messages[0]["campaign"] == "Spring"
    assert activity.counts == {"sent": 1, "open": 1, "click": 2}
    assert len(activity.events) == 4

    # Neither the ledger nor events have foreign keys: deleting the contact takes its rows
    # and events along (even an event of its message filed under no contact, as a bounce
    # to an address the ledger does not know is), and leaves another recipient's alone.
    other = make_contact(session, ws)
    other_message = _sent(session, campaign, other)
    session.add(_event(message, None, "bounce", f"orphan-{contact.id}"))
    session.add(_event(other_message, other.id, "bounce", f"other-{contact.id}"))
    session.flush()
    gone, kept, campaign_id, gone_message = contact.id, other.id, campaign.id, message.id
    assert delete_contacts(session, owner, [gone]) == 1
    left = session.scalars(select(Message.contact_id).where(Message.campaign_id == campaign_id))
    assert list(left) == [kept]
    assert session.scalar(select(Event.id).where(Event.contact_id == gone)) is None
    assert session.scalar(select(Event.id).where(Event.message_id == gone_message)) is None
    assert list(session.scalars(select(Event.contact_id))) == [kept]
    # Deleting the campaign takes the rest of its ledger and events.
    delete_campaign(session, owner, campaign_id)
    assert session.scalar(select(Message.id).where(Message.campaign_id == campaign_id)) is None
    assert session.scalar(select(Event.id).where(Event.campaign_id == campaign_id)) is None


def test_export_filters_custom_columns_and_neutralizes(session, ws, owner):
    create_custom_field(session, owner, "note", "Note", "text")
    make_contact(
        session,
        ws,
        email="a@example.com",
        first_name='=HYPERLINK("http://x")',
        custom_fields={"note": "@SUM(1)"},
    )
    make_contact(
        session, ws, email="b@example.com", phone="+1 555", company="-2+3", status="bounced"
    )
    make_contact(session, ws, email="c@example.com", city="\tTab", last_name="-5")
    make_contact(session, make_workspace(session), email="other@example.com")
    path = export_contacts(session, owner, ContactFilter(), "csv")
    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = {r["email"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"a@example.com", "b@example.com", "c@example.com"}
    assert rows["a@example.com"]["first_name"] == '\'=HYPERLINK("http://x")'
    assert rows["a@example.com"]["note"] == "'@SUM(1)"
    assert rows["b@example.com"]["phone"] == "'+1 555"
    assert rows["b@example.com"]["company"] == "'-2+3"
    assert rows["c@example.com"]["city"] == "'\tTab"
    assert rows["c@example.com"]["last_name"] == "-5"
    assert neutralize("\rcmd") == "'\rcmd"

    xlsx = export_contacts(session, owner, ContactFilter(statuses=("bounced",)), "xlsx")
    sheet = load_workbook(xlsx, read_only=True).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][0] == "email" and "note" in values[0]
    assert [r[0] for r in values[1:]] == ["b@example.com"]


def test_only_a_signup_makes_a_contact_unconfirmed(session, ws, owner):
    keen = make_contact(session, ws)
    waiting = make_contact(session, ws, status="unconfirmed")
    with pytest.raises(ValidationFailed, match="double opt-in"):
        set_status(session, owner, [keen.id], "unconfirmed")
    with pytest.raises(ValidationFailed, match="double opt-in"):
        create_contact(session, owner, ContactInput(email="new@example.com", status="unconfirmed"))
    assert keen.status == "subscribed"
    # A contact already unconfirmed keeps its status through an edit of something else.
    assert set_status(session, owner, [waiting.id], "unconfirmed") == 0
    assert waiting.status == "unconfirmed"
