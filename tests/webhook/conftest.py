"""Fixtures for the webhook: a test SNS (certificate served by an injected GET) and a ledger."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from core.infra.clock import now
from core.infra.config import settings
from core.infra.db import session_scope
from core.ingest import sns
from core.models import Campaign, Contact, Message, Workspace
from tests.helpers import make_contact, make_workspace
from tests.webhook.snsutil import CERT_PEM, CERT_URL, TOPIC

_seq = itertools.count(1)


class FakeSns:
    """The HTTP GETs the webhook makes, answered from memory and recorded."""

    def __init__(self) -> None:
        self.documents: dict[str, bytes] = {CERT_URL: CERT_PEM}
        self.visited: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.visited.append(url)
        if url not in self.documents:
            raise OSError(f"404 for {url}")
        return self.documents[url]


@pytest.fixture
def fake_sns(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSns]:
    fake = FakeSns()
    monkeypatch.setattr(settings, "sns_topic_arns", TOPIC)
    monkeypatch.setattr(settings, "sns_cert_dir", None)
    sns.set_http_get(fake)
    yield fake
    sns.set_http_get(None)


@dataclass
class Ledger:
    workspace: Workspace
    campaign: Campaign
    contacts: list[Contact]
    messages: list[Message]


def make_ledger(session: Session, recipients: int = 3, name: str = "Acme News") -> Ledger:
    """A workspace with a sent campaign: one contact and one message row per recipient."""
    workspace = make_workspace(session, name=name)
    campaign = Campaign(workspace_id=workspace.id, name="Spring sale", status="sent")
    session.add(campaign)
    session.flush()
    contacts, messages = [], []
    for i in range(recipients):
        n = next(_seq)
        contact = make_contact(session, workspace, email=f"reader{n}@example.net")
        message = Message(
            workspace_id=workspace.id,
            campaign_id=campaign.id,
            contact_id=contact.id,
            email=contact.email,
            status="sent",
            provider_message_id=f"0100-ses-{n}-{i}",
            sent_at=now() - timedelta(hours=1),
        )
        session.add(message)
        contacts.append(contact)
        messages.append(message)
    session.flush()
    return Ledger(workspace, campaign, contacts, messages)


@pytest.fixture
def ledger(live_db: str) -> Ledger:
    """A committed ledger in the live database the app under test uses."""
    with session_scope() as session:
        return make_ledger(session)
