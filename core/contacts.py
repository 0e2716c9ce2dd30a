"""Contacts: the workspace's address book."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.errors import NotFound
from core.models import Contact
from core.permissions import Actor


def get_contact(session: Session, actor: Actor, contact_id: int) -> Contact:
    actor.require("read")
    contact = session.get(Contact, contact_id)
    if contact is None or contact.workspace_id != actor.workspace_id:
        raise NotFound("No such contact in this workspace.")
    return contact


def search_contacts(session: Session, actor: Actor, text: str, limit: int = 20) -> list[Contact]:
    """Contacts whose email or name starts with `text` (case-insensitive), for pickers."""
    actor.require("read")
    query = select(Contact).where(Contact.workspace_id == actor.workspace_id)
    text = (text or "").strip().lower()
    if text:
        pattern = f"{text}%"
        query = query.where(
            or_(
                Contact.email.like(pattern),
                Contact.first_name.ilike(pattern),
                Contact.last_name.ilike(pattern),
            )
        )
    return list(session.scalars(query.order_by(Contact.email).limit(limit)))
