"""Our own events: the tracking pixel's opens, the redirect's clicks, and unsubscribes
(the page and one-click)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from core.contacts import consent
from core.infra.clock import now
from core.infra.db import referenced
from core.infra.errors import NotFound
from core.infra.permissions import Actor
from core.ingest.store import NewEvent, _key, classify_open, store_events
from core.models import Contact, Message, Workspace


def _message(session: Session, actor: Actor, message_id: int) -> Message:
    message = session.get(Message, message_id)
    if message is None or message.workspace_id != actor.workspace_id:
        raise NotFound("No such message in this workspace.")
    return message


def _own_event(
    actor: Actor,
    message: Message,
    type_: str,
    at: Any,
    key: str,
    user_agent: str | None,
    ip: str | None,
    url: str | None = None,
) -> NewEvent:
    """An open or click of our own tracking, classified as human or machine."""
    is_machine, reason = classify_open(user_agent, message.sent_at, at)
    data: dict[str, Any] = {"ip": ip}
    if reason:
        data["machine_reason"] = reason
    return NewEvent(
        workspace_id=actor.workspace_id,
        type=type_,
        dedupe_key=f"own:{type_}:{message.id}:{int(at.timestamp())}:{key}",
        occurred_at=at,
        source="own",
        message=message,
        contact_id=message.contact_id,
        email=message.email,
        url=url,
        user_agent=user_agent,
        is_machine=is_machine,
        data=data,
    )


def record_open(
    session: Session, actor: Actor, message_id: int, user_agent: str | None, ip: str | None
) -> bool:
    """Store an open of our pixel; True when it was new (not a reload in the same second)."""
    message = _message(session, actor, message_id)
    key = _key(user_agent)[:12]
    event = _own_event(actor, message, "open", now(), key, user_agent, ip)
    return bool(store_events(session, [event]))


def record_click(
    session: Session,
    actor: Actor,
    message_id: int,
    url: str,
    user_agent: str | None,
    ip: str | None,
) -> str:
    """Store a click on a tracked link of the message; returns where to send the reader.

    `url` comes from a token signed when the message was rendered, so it is a link the
    message really contained."""
    message = _message(session, actor, message_id)
    key = _key(url, user_agent)[:16]
    store_events(session, [_own_event(actor, message, "click", now(), key, user_agent, ip, url)])
    return url


@dataclass(frozen=True)
class UnsubscribePage:
    workspace_name: str
    email: str
    status: str


def _unsubscribe_contact(
    session: Session, actor: Actor, contact_id: int, message_id: int | None
) -> tuple[Contact, Workspace, Message | None]:
    contact = session.get(Contact, contact_id)
    if contact is None or contact.workspace_id != actor.workspace_id:
        raise NotFound("No such contact in this workspace.")
    message = None
    if message_id is not None:
        message = _message(session, actor, message_id)
        if message.contact_id != contact.id:
            raise NotFound("That message was not sent to this contact.")
    workspace = referenced(session, Workspace, actor.workspace_id)
    return contact, workspace, message


def describe_unsubscribe(
    session: Session, actor: Actor, contact_id: int, message_id: int | None
) -> UnsubscribePage:
    """What the unsubscribe page shows: the workspace, the address, its status."""
    contact, workspace, _ = _unsubscribe_contact(session, actor, contact_id, message_id)
    return UnsubscribePage(workspace.name, contact.email, contact.status)


def unsubscribe(
    session: Session,
    actor: Actor,
    contact_id: int,
    message_id: int | None,
    via: str,
    ip: str = "",
    user_agent: str = "",
) -> UnsubscribePage:
    """Unsubscribe the contact at once: status, suppression, one unsubscribe event, and a
    consent row when this took a subscription back (`via`: "one-click" for a mail client's
    RFC 8058 POST, "page" for the unsubscribe page's button, "preferences" for the
    preference centre)."""
    contact, workspace, message = _unsubscribe_contact(session, actor, contact_id, message_id)
    was = contact.status
    event = NewEvent(
        workspace_id=actor.workspace_id,
        type="unsubscribe",
        dedupe_key=f"own:unsubscribe:{contact.id}:{message.id if message else 0}",
        occurred_at=now(),
        source="own",
        message=message,
        contact_id=contact.id,
        email=contact.email,
        data={"via": via},
    )
    store_events(session, [event])
    session.refresh(contact)
    if was != contact.status and was in ("subscribed", "unconfirmed"):
        consent.record(
            session,
            actor.workspace_id,
            [contact.id],
            "unsubscribe",
            "preferences" if via == "preferences" else "one-click",
            detail={
                "page": "unsubscribe page",
                "preferences": "unsubscribe from everything",
            }.get(via, "List-Unsubscribe (RFC 8058)"),
            ip=ip,
            user_agent=user_agent,
            at=event.occurred_at,
        )
    return UnsubscribePage(workspace.name, contact.email, contact.status)
