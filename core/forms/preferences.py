"""The preference centre (issue 17): what `GET /p/{token}` shows a recipient, saving their
choices, and the download of what we hold about them.

The token (core.ingest.tracking.preferences_url) names the workspace and the contact, like
the unsubscribe link in the same mail. Only public lists are shown or changed; every list
joined or left, and an unsubscribe from everything, appends a consent row with source
`preferences` and the IP and user agent of the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.contacts import consent
from core.contacts.export import contact_consent
from core.contacts.service import STANDARD_COLUMNS, contact_activity
from core.infra import clock
from core.infra.errors import NotFound, ValidationFailed
from core.infra.permissions import Actor
from core.ingest import own
from core.models import Contact, ContactList, ListMembership, Workspace
from core.models.statuses import ContactStatus

MAX_NAME = 100


@dataclass(frozen=True)
class PublicList:
    id: int
    name: str
    description: str
    member: bool


@dataclass(frozen=True)
class Preferences:
    workspace_name: str
    email: str
    first_name: str
    last_name: str
    subscribed: bool
    lists: tuple[PublicList, ...]


def _contact(session: Session, workspace_id: int, contact_id: int) -> Contact:
    contact = session.get(Contact, contact_id)
    if contact is None or contact.workspace_id != workspace_id:
        raise NotFound("This link is no longer valid.")
    return contact


def _public_lists(session: Session, workspace_id: int) -> list[ContactList]:
    return list(
        session.scalars(
            select(ContactList)
            .where(ContactList.workspace_id == workspace_id, ContactList.visibility == "public")
            .order_by(ContactList.name)
        )
    )


def _member_of(session: Session, contact_id: int) -> set[int]:
    return set(
        session.scalars(
            select(ListMembership.list_id).where(ListMembership.contact_id == contact_id)
        )
    )


def preferences(session: Session, workspace_id: int, contact_id: int) -> Preferences:
    """What the page shows (reads only)."""
    contact = _contact(session, workspace_id, contact_id)
    workspace = session.get(Workspace, workspace_id)
    assert workspace is not None  # foreign key
    member = _member_of(session, contact.id)
    return Preferences(
        workspace_name=workspace.from_name or workspace.name,
        email=contact.email,
        first_name=contact.first_name or "",
        last_name=contact.last_name or "",
        subscribed=contact.status == ContactStatus.SUBSCRIBED,
        lists=tuple(
            PublicList(lst.id, lst.name, lst.description or "", lst.id in member)
            for lst in _public_lists(session, workspace_id)
        ),
    )


@dataclass(frozen=True)
class Saved:
    joined: tuple[str, ...]
    left: tuple[str, ...]
    renamed: bool
    unsubscribed: bool


def save_preferences(
    session: Session,
    workspace_id: int,
    contact_id: int,
    *,
    first_name: str,
    last_name: str,
    list_ids: set[int],
    unsubscribe_all: bool,
    ip: str = "",
    user_agent: str = "",
    now: datetime | None = None,
) -> Saved:
    """Save the page: the name, the public lists checked (others left alone), and an
    unsubscribe from everything. Joining a list while unsubscribed only records the wish:
    the status changes through a confirmed signup, never here."""
    at = now or clock.now()
    contact = _contact(session, workspace_id, contact_id)
    first, last = first_name.strip(), last_name.strip()
    if len(first) > MAX_NAME or len(last) > MAX_NAME:
        raise ValidationFailed(f"A name has at most {MAX_NAME} characters.")
    renamed = (first, last) != (contact.first_name or "", contact.last_name or "")
    if renamed:
        contact.first_name, contact.last_name = first, last
        contact.updated_at = at
    public = {lst.id: lst.name for lst in _public_lists(session, workspace_id)}
    member = _member_of(session, contact.id) & set(public)
    wanted = {i for i in list_ids if i in public}
    joined = sorted(wanted - member)
    left = sorted(member - wanted)
    if unsubscribe_all:
        left = sorted(member)
        joined = []
    if joined:
        session.add_all(ListMembership(list_id=i, contact_id=contact.id) for i in joined)
    if left:
        session.execute(
            delete(ListMembership).where(
                ListMembership.contact_id == contact.id, ListMembership.list_id.in_(left)
            )
        )
    for ids, action in ((joined, "subscribe"), (left, "unsubscribe")):
        if ids and (action == "unsubscribe" or contact.status == ContactStatus.SUBSCRIBED):
            consent.record(
                session,
                workspace_id,
                [contact.id],
                action,
                "preferences",
                list_ids=ids,
                detail="preference centre",
                ip=ip,
                user_agent=user_agent,
                at=at,
            )
    unsubscribed = False
    if unsubscribe_all and contact.status in (ContactStatus.SUBSCRIBED, ContactStatus.UNCONFIRMED):
        own.unsubscribe(
            session,
            Actor.system(workspace_id),
            contact.id,
            None,
            via="preferences",
            ip=ip,
            user_agent=user_agent,
        )
        unsubscribed = True
    session.flush()
    return Saved(
        joined=tuple(public[i] for i in joined),
        left=tuple(public[i] for i in left),
        renamed=renamed,
        unsubscribed=unsubscribed,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return clock.as_utc(value).isoformat()
    return value


def data_of(session: Session, workspace_id: int, contact_id: int) -> dict[str, Any]:
    """Everything we hold about the contact, for the person to download (JSON-ready):
    fields, lists (private ones too: it is their data), consent history, messages."""
    contact = _contact(session, workspace_id, contact_id)
    actor = Actor.system(workspace_id)
    workspace = session.get(Workspace, workspace_id)
    assert workspace is not None  # foreign key
    lists = session.scalars(
        select(ContactList.name)
        .join(ListMembership, ListMembership.list_id == ContactList.id)
        .where(ListMembership.contact_id == contact.id)
        .order_by(ContactList.name)
    )
    activity = contact_activity(session, actor, contact.id, limit=10_000)
    return {
        "controller": workspace.from_name or workspace.name,
        "exported_at": clock.now().isoformat(),
        "fields": {
            "email": contact.email,
            **{c: getattr(contact, c) or "" for c in STANDARD_COLUMNS},
            "custom_fields": contact.custom_fields or {},
            "status": contact.status,
            "source": contact.source,
            "created_at": _plain(contact.created_at),
            "updated_at": _plain(contact.updated_at),
        },
        "lists": list(lists),
        "consent": [
            {k: _plain(v) for k, v in row.items() if k != "source_label"}
            for row in contact_consent(session, actor, contact.id)
        ],
        "messages": [{k: _plain(v) for k, v in m.items()} for m in activity.messages],
    }
