"""Small builders for test data (no factory framework) and outbox readers."""

from __future__ import annotations

import email
import itertools
from email.message import Message
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from core.accounts.auth import create_user, ensure_workspace
from core.infra.permissions import Actor
from core.models import Campaign, Contact, User, Workspace
from core.models import Message as LedgerRow

PASSWORD = "correct-horse-42"
_seq = itertools.count(1)


def sessions_on(session: Session) -> sessionmaker[Session]:
    """A session factory on the test's connection, for functions that run their own batches
    (they take a factory, not a session). Each session it makes joins the test's transaction
    through a savepoint: its commits release savepoints, and the test's rollback still undoes
    everything. What `session` holds is flushed first, so the factory's sessions see it."""
    session.flush()
    return sessionmaker(bind=session.connection(), join_transaction_mode="create_savepoint")


def make_workspace(session: Session, slug: str | None = None, **fields) -> Workspace:
    workspace = ensure_workspace(session, slug or f"ws-{next(_seq)}")
    for key, value in fields.items():
        setattr(workspace, key, value)
    session.flush()
    return workspace


def make_user(
    session: Session,
    workspace: Workspace,
    role: str = "owner",
    email: str | None = None,
    password: str = PASSWORD,
) -> User:
    return create_user(session, workspace, email or f"user{next(_seq)}@example.com", password, role)


def actor_of(user: User) -> Actor:
    return Actor(workspace_id=user.workspace_id, role=user.role, user_id=user.id, email=user.email)


def make_contact(session: Session, workspace: Workspace, **fields) -> Contact:
    fields.setdefault("email", f"contact{next(_seq)}@example.com")
    contact = Contact(workspace_id=workspace.id, **fields)
    session.add(contact)
    session.flush()
    return contact


def make_campaign_with_ledger(
    session: Session, workspace: Workspace, name: str, status: str, ledger: list[str]
) -> Campaign:
    """A campaign with one ledger row per status in `ledger`, each for a new contact."""
    campaign = Campaign(workspace_id=workspace.id, name=name, status=status)
    session.add(campaign)
    session.flush()
    for row_status in ledger:
        contact = make_contact(session, workspace)
        session.add(
            LedgerRow(
                workspace_id=workspace.id,
                campaign_id=campaign.id,
                contact_id=contact.id,
                email=contact.email,
                status=row_status,
            )
        )
    session.flush()
    return campaign


def outbox_messages(outbox: Path) -> list[Message]:
    """Every message in the outbox Maildir, oldest first."""
    files = sorted((outbox / "new").glob("*.eml"), key=lambda p: p.stat().st_mtime)
    return [email.message_from_bytes(p.read_bytes()) for p in files]


def message_text(message: Message) -> str:
    """The text/plain part of a message, decoded."""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            return part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
    return ""
