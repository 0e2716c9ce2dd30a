"""One-click unsubscribe and the unsubscribe page append a consent row each, told apart
(issue 17), through the real FastAPI app; RFC 8058 one-click works as before."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from core.infra.db import session_scope
from core.ingest.tracking import unsubscribe_url
from core.models import Consent
from webhook.main import app


def _rows(session, contact_id) -> list[tuple[str, str, str]]:
    return [
        (r.action, r.source, r.source_detail)
        for r in session.scalars(
            select(Consent).where(Consent.contact_id == contact_id).order_by(Consent.id)
        )
    ]


def test_one_click_and_the_page_through_the_webhook(ledger):
    client = TestClient(app)
    first, second = ledger.messages[0], ledger.messages[1]
    one_click = unsubscribe_url(ledger.workspace.id, first.contact_id, first.id)
    page = unsubscribe_url(ledger.workspace.id, second.contact_id, second.id)
    strip = "http://track.example.com"
    body = {"content-type": "application/x-www-form-urlencoded", "user-agent": "MailClient/1"}
    client.post(one_click.removeprefix(strip), content=b"List-Unsubscribe=One-Click", headers=body)
    client.post(one_click.removeprefix(strip), content=b"List-Unsubscribe=One-Click", headers=body)
    assert 'name="via" value="page"' in client.get(page.removeprefix(strip)).text
    client.post(
        page.removeprefix(strip), content=b"List-Unsubscribe=One-Click&via=page", headers=body
    )
    with session_scope() as session:
        assert _rows(session, first.contact_id) == [
            ("unsubscribe", "one-click", "List-Unsubscribe (RFC 8058)")  # once, not twice
        ]
        assert _rows(session, second.contact_id) == [
            ("unsubscribe", "one-click", "unsubscribe page")
        ]
        row = session.scalar(select(Consent).where(Consent.contact_id == first.contact_id))
        assert row.user_agent == "MailClient/1"
