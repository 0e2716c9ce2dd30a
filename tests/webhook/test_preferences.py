"""The preference centre through the real FastAPI app (issue 17): lists, name, unsubscribe
from everything, the data download, consent rows for every change, test links change
nothing, forged links nothing at all."""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient
from sqlalchemy import select

from core.content.rendering import MailContext, compile_template, render_for_contact
from core.infra.db import session_scope
from core.infra.tokens import sign
from core.ingest.tracking import (
    preferences_url,
    preferences_url_of_test_send,
    unsubscribe_url_of_test_send,
)
from core.models import Consent, Contact, ContactList, ListMembership
from webhook.main import app

BASE = "http://track.example.com"
FORM = {"content-type": "application/x-www-form-urlencoded", "user-agent": "Firefox/140"}


def _lists(workspace_id: int) -> tuple[int, int, int]:
    with session_scope() as session:
        rows = [
            ContactList(workspace_id=workspace_id, name=n, visibility=v, description=d)
            for n, v, d in (
                ("News", "public", "Monthly <b>news</b>"),
                ("Offers", "public", ""),
                ("VIP", "private", ""),
            )
        ]
        session.add_all(rows)
        session.flush()
        return rows[0].id, rows[1].id, rows[2].id


def test_preference_centre_changes_are_consent_rows(ledger):
    client = TestClient(app)
    contact = ledger.contacts[0]
    news, offers, vip = _lists(ledger.workspace.id)
    with session_scope() as session:
        session.add_all(
            [
                ListMembership(list_id=news, contact_id=contact.id),
                ListMembership(list_id=vip, contact_id=contact.id),
            ]
        )
        session.get(Contact, contact.id).first_name = '<script>alert("x")</script>'
    url = preferences_url(ledger.workspace.id, contact.id).removeprefix(BASE)
    page = client.get(url)
    assert page.status_code == 200
    assert "News" in page.text and "Offers" in page.text and "VIP" not in page.text
    assert "<script>alert" not in page.text and "&lt;script&gt;" in page.text
    assert "&lt;b&gt;news&lt;/b&gt;" in page.text
    assert re.search(rf'value="{news}"\s*checked', page.text)
    assert "<script" not in page.text.split("</style>")[1]  # no JavaScript needed

    saved = client.post(
        url, content=f"first_name=Ada&last_name=King&list={offers}&list={vip}", headers=FORM
    )
    assert (
        saved.status_code == 200 and "Joined: Offers" in saved.text and "Left: News" in saved.text
    )
    with session_scope() as session:
        member = set(
            session.scalars(
                select(ListMembership.list_id).where(ListMembership.contact_id == contact.id)
            )
        )
        assert member == {offers, vip}  # a private list is never changed from outside
        assert session.get(Contact, contact.id).first_name == "Ada"
        rows = session.scalars(
            select(Consent).where(Consent.contact_id == contact.id).order_by(Consent.id)
        ).all()
        assert [(r.action, r.source, r.list_ids) for r in rows] == [
            ("subscribe", "preferences", [offers]),
            ("unsubscribe", "preferences", [news]),
        ]
        assert rows[0].user_agent == "Firefox/140"

    client.post(url, content="first_name=Ada&last_name=King&unsubscribe_all=1", headers=FORM)
    with session_scope() as session:
        assert session.get(Contact, contact.id).status == "unsubscribed"
        last = session.scalars(
            select(Consent).where(Consent.contact_id == contact.id).order_by(Consent.id)
        ).all()[-2:]
        assert [(r.action, r.source) for r in last] == [
            ("unsubscribe", "preferences"),
            ("unsubscribe", "preferences"),
        ]

    data = client.get(url + "/data")
    assert data.status_code == 200 and "attachment" in data.headers["content-disposition"]
    held = json.loads(data.text)
    assert held["fields"]["email"] == contact.email and held["fields"]["first_name"] == "Ada"
    assert held["lists"] == ["VIP"]  # everything public was left
    assert [c["action"] for c in held["consent"]][:2] == ["subscribe", "unsubscribe"]
    assert held["messages"][0]["campaign"] == "Spring sale"


def test_forged_and_test_links_change_nothing(ledger):
    client = TestClient(app)
    contact = ledger.contacts[1]
    forged = sign("prefs", ledger.workspace.id, contact.id, key="not-our-key-0123456789")
    assert client.get(f"/p/{forged}").status_code == 404
    assert client.post(f"/p/{forged}", content="unsubscribe_all=1", headers=FORM).status_code == 404
    assert client.get(f"/p/{forged}/data").status_code == 404
    other = sign("unsub", ledger.workspace.id, contact.id, 0)  # another purpose's token
    assert client.get(f"/p/{other}").status_code == 404
    test = preferences_url_of_test_send(ledger.workspace.id).removeprefix(BASE)
    answer = client.post(test, content="unsubscribe_all=1", headers=FORM)
    assert answer.status_code == 200 and "test message" in answer.text
    with session_scope() as session:
        assert session.get(Contact, contact.id).status == "subscribed"
        assert session.scalar(select(Consent.id)) is None


def test_every_mail_gets_a_preferences_link_and_previews_a_test_one(ledger):
    contact = ledger.contacts[0]
    ctx = MailContext(ledger.workspace.id, "Acme", "1 Main St")
    footer = compile_template("Hi", "<p>Hello</p>", None)
    real = render_for_contact(footer, contact, ctx, message_id=ledger.messages[0].id)
    link = preferences_url(ledger.workspace.id, contact.id)
    assert link in real.html and "Email preferences" in real.html and link in real.text
    own = compile_template("Hi", '<a href="{{ preferences_url }}">prefs</a>{{ unsubscribe_url }}')
    test = render_for_contact(
        own, contact, ctx, unsubscribe_url=unsubscribe_url_of_test_send(ledger.workspace.id)
    )
    assert "/p/test/" in test.html and link not in test.html
    pipeline_row = {"contact_id": contact.id, "email": contact.email, "custom_fields": {}}
    assert link in render_for_contact(own, pipeline_row, ctx, message_id=5).html
