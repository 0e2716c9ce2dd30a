"""Contacts: the workspace's address book."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import available_timezones

from sqlalchemy import Select, delete, exists, func, or_, select
from sqlalchemy.orm import Session

from core.accounts.auth import normalize_email
from core.contacts import consent
from core.contacts.fields import validate_custom_values
from core.contacts.lists import set_contact_lists
from core.infra.clock import now
from core.infra.db import fold, like_escape, rowcount
from core.infra.errors import NotFound, ValidationFailed
from core.infra.permissions import Actor
from core.models import (
    CONTACT_STATUSES,
    AuditLog,
    Automation,
    Campaign,
    Contact,
    Event,
    ListMembership,
    Message,
    Suppression,
)
from core.models.statuses import ContactStatus

STANDARD_COLUMNS = ("first_name", "last_name", "company", "city", "country", "phone")
SORTABLE = {
    "created_at": Contact.created_at,
    "updated_at": Contact.updated_at,
    "email": Contact.email,
    "first_name": Contact.first_name,
    "last_name": Contact.last_name,
    "company": Contact.company,
    "status": Contact.status,
}
PAGE_SIZES = (50, 100)
EMAIL_LIKE = re.compile(r"[^@\s]+@[^@\s]+\.[a-z]{2,}")
_BULK = 5000


class ConfirmationRequired(ValidationFailed):
    """The change is allowed only with an explicit confirmation (re-subscribing)."""


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
    text = (text or "").strip()
    if text:
        pattern = f"{like_escape(text)}%"
        query = query.where(
            or_(
                Contact.email.like(pattern.lower(), escape="\\"),
                fold(Contact.first_name).like(fold(pattern), escape="\\"),
                fold(Contact.last_name).like(fold(pattern), escape="\\"),
            )
        )
    return list(session.scalars(query.order_by(Contact.email).limit(limit)))


# --- the table: filter, sort, page ---------------------------------------------------------


@dataclass(frozen=True)
class ContactFilter:
    """What the contacts table (and its export) shows."""

    search: str = ""
    statuses: tuple[str, ...] = ()
    list_id: int | None = None
    created_from: date | None = None
    created_to: date | None = None  # inclusive


@dataclass
class ContactPage:
    rows: list[Contact]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def filtered_query(actor: Actor, flt: ContactFilter) -> Select:
    """SELECT Contact rows of the acting workspace that match `flt`."""
    query = select(Contact).where(Contact.workspace_id == actor.workspace_id)
    text = (flt.search or "").strip()
    if text:
        # Addresses are stored lower-cased; names compare case-folded (core.infra.db.fold).
        escaped = like_escape(text)
        if EMAIL_LIKE.fullmatch(text):
            # A whole address: the unique index answers at once, even with a million rows.
            query = query.where(Contact.email == text.lower())
        elif " " in text:
            # "Ann Smith": the full name.
            full_name = Contact.first_name + " " + Contact.last_name
            query = query.where(fold(full_name).like(fold(f"%{escaped}%"), escape="\\"))
        else:
            # Part of the address, or the start of a first or last name; one cheap pass.
            query = query.where(
                or_(
                    Contact.email.like(f"%{escaped.lower()}%", escape="\\"),
                    fold(Contact.first_name).like(fold(f"{escaped}%"), escape="\\"),
                    fold(Contact.last_name).like(fold(f"{escaped}%"), escape="\\"),
                )
            )
    if flt.statuses:
        query = query.where(Contact.status.in_(flt.statuses))
    if flt.list_id is not None:
        query = query.where(
            exists().where(
                ListMembership.list_id == flt.list_id, ListMembership.contact_id == Contact.id
            )
        )
    if flt.created_from is not None:
        start = datetime.combine(flt.created_from, time.min, tzinfo=now().tzinfo)
        query = query.where(Contact.created_at >= start)
    if flt.created_to is not None:
        end = datetime.combine(flt.created_to + timedelta(days=1), time.min, tzinfo=now().tzinfo)
        query = query.where(Contact.created_at < end)
    return query


def page_contacts(
    session: Session,
    actor: Actor,
    flt: ContactFilter | None = None,
    sort: str = "created_at",
    descending: bool = True,
    page: int = 1,
    page_size: int = 50,
) -> ContactPage:
    """One page of the table and the total, both counted by the database."""
    actor.require("read")
    flt = flt or ContactFilter()
    if sort not in SORTABLE:
        raise ValidationFailed(f"Cannot sort by {sort!r}.")
    if page_size not in PAGE_SIZES:
        raise ValidationFailed(f"A page has {' or '.join(map(str, PAGE_SIZES))} rows.")
    query = filtered_query(actor, flt)
    total = session.scalar(query.with_only_columns(func.count(), maintain_column_froms=True)) or 0
    pages = max(1, -(-total // page_size))
    page = min(max(1, page), pages)
    column = SORTABLE[sort]
    order = (column.desc(), Contact.id.desc()) if descending else (column.asc(), Contact.id.asc())
    rows = list(
        session.scalars(query.order_by(*order).offset((page - 1) * page_size).limit(page_size))
    )
    return ContactPage(rows=rows, total=total, page=page, page_size=page_size)


# --- add, edit, delete ----------------------------------------------------------------------


@dataclass
class ContactInput:
    """What a form (or an API caller) sets on one contact."""

    email: str
    first_name: str = ""
    last_name: str = ""
    company: str = ""
    city: str = ""
    country: str = ""
    phone: str = ""
    status: str = "subscribed"
    custom_fields: dict[str, Any] = field(default_factory=dict)
    list_ids: list[int] | None = None  # None leaves memberships alone
    # An IANA time zone (automations' until_time); None leaves it alone, "" clears it.
    timezone: str | None = None


def check_timezone(value: str) -> str:
    """An IANA time zone name ("Europe/Berlin"), or ValidationFailed."""
    value = value.strip()
    if value not in available_timezones():
        raise ValidationFailed(f"{value!r} is not a time zone (use a name such as Europe/Berlin).")
    return value


def _timezone(value: str | None) -> str | None:
    return check_timezone(value) if value else None


def _audit(session: Session, actor: Actor, action: str, target: str, **detail: Any) -> None:
    session.add(
        AuditLog(
            workspace_id=actor.workspace_id,
            user_id=actor.user_id,
            action=action,
            target=target,
            detail=detail,
        )
    )


# Only a double-opt-in signup makes a contact unconfirmed (core.forms); by hand it would
# hide a subscribed contact from every campaign without a trace of why.
UNCONFIRMED_BY_HAND = (
    "Only a signup on a double opt-in form makes a contact unconfirmed; choose another status."
)
SETTABLE_STATUSES = tuple(s for s in CONTACT_STATUSES if s != ContactStatus.UNCONFIRMED)


def _check_status(status: str) -> None:
    if status not in CONTACT_STATUSES:
        raise ValidationFailed(f"The status must be one of {', '.join(CONTACT_STATUSES)}.")


def _email_taken(session: Session, actor: Actor, email: str, own_id: int | None) -> bool:
    other = session.scalar(
        select(Contact.id).where(Contact.workspace_id == actor.workspace_id, Contact.email == email)
    )
    return other is not None and other != own_id


def _suppression_status(session: Session, actor: Actor, email: str) -> str | None:
    reason = session.scalar(
        select(Suppression.reason).where(
            Suppression.workspace_id == actor.workspace_id, Suppression.email == email
        )
    )
    if reason is None:
        return None
    return {"bounce": "bounced", "complaint": "complained"}.get(reason, "unsubscribed")


def create_contact(session: Session, actor: Actor, data: ContactInput) -> Contact:
    actor.require("edit")
    email = normalize_email(data.email)
    if _email_taken(session, actor, email, None):
        raise ValidationFailed(f"{email} is already in this workspace.")
    _check_status(data.status)
    if data.status == ContactStatus.UNCONFIRMED:
        raise ValidationFailed(UNCONFIRMED_BY_HAND)
    status = data.status
    suppressed = _suppression_status(session, actor, email)
    if status == ContactStatus.SUBSCRIBED and suppressed:
        # A suppressed address is never subscribed by adding it again.
        status = suppressed
    contact = Contact(
        workspace_id=actor.workspace_id,
        email=email,
        status=status,
        source="manual",
        custom_fields=validate_custom_values(session, actor, data.custom_fields),
        timezone=_timezone(data.timezone),
        **{c: (getattr(data, c) or "").strip() for c in STANDARD_COLUMNS},
    )
    session.add(contact)
    session.flush()
    if data.list_ids:
        set_contact_lists(session, actor, contact.id, data.list_ids)
    if status == ContactStatus.SUBSCRIBED:
        consent.record(
            session,
            actor.workspace_id,
            [contact.id],
            "subscribe",
            "manual",
            list_ids=data.list_ids or (),
            detail="added by hand",
            user_id=actor.user_id,
        )
    return contact


def update_contact(
    session: Session,
    actor: Actor,
    contact_id: int,
    data: ContactInput,
    confirm_resubscribe: bool = False,
) -> Contact:
    """Save the form. Turning a non-subscribed contact back to subscribed needs
    `confirm_resubscribe` and is written to the audit log."""
    actor.require("edit")
    contact = get_contact(session, actor, contact_id)
    email = normalize_email(data.email)
    if email != contact.email and _email_taken(session, actor, email, contact.id):
        raise ValidationFailed(f"{email} is already in this workspace.")
    custom = validate_custom_values(session, actor, data.custom_fields)
    zone = _timezone(data.timezone) if data.timezone is not None else contact.timezone
    _change_status(session, actor, [contact], data.status, confirm_resubscribe)
    contact.email = email
    for column in STANDARD_COLUMNS:
        setattr(contact, column, (getattr(data, column) or "").strip())
    contact.custom_fields = custom
    contact.timezone = zone
    contact.updated_at = now()
    session.flush()
    if data.list_ids is not None:
        set_contact_lists(session, actor, contact.id, data.list_ids)
    return contact


def _change_status(
    session: Session,
    actor: Actor,
    contacts: list[Contact],
    status: str,
    confirm_resubscribe: bool,
) -> int:
    _check_status(status)
    changing = [c for c in contacts if c.status != status]
    if status == ContactStatus.UNCONFIRMED and changing:
        raise ValidationFailed(UNCONFIRMED_BY_HAND)
    if status == ContactStatus.SUBSCRIBED:
        back = [c for c in changing if c.status != ContactStatus.SUBSCRIBED]
        if back and not confirm_resubscribe:
            raise ConfirmationRequired(
                f"{len(back)} contact(s) unsubscribed, bounced or complained. Re-subscribing "
                "them needs an explicit confirmation that they asked for it."
            )
    # The consent record: a subscription given or taken back by a user's hand.
    subscribed = [c.id for c in changing if status == ContactStatus.SUBSCRIBED]
    resubscribed = [
        c.id
        for c in changing
        if status == ContactStatus.SUBSCRIBED and c.status != ContactStatus.UNCONFIRMED
    ]
    unsubscribed = [c.id for c in changing if c.status == ContactStatus.SUBSCRIBED]
    detail = f"status set to {status}"
    for ids, action in (
        ([i for i in subscribed if i not in resubscribed], "subscribe"),
        (resubscribed, "resubscribe"),
        (unsubscribed, "unsubscribe"),
    ):
        consent.record(
            session, actor.workspace_id, ids, action, "manual", detail=detail, user_id=actor.user_id
        )
    for contact in changing:
        previous = contact.status
        contact.status = status
        contact.updated_at = now()
        if status == ContactStatus.SUBSCRIBED:
            removed = rowcount(
                session.execute(
                    delete(Suppression).where(
                        Suppression.workspace_id == actor.workspace_id,
                        Suppression.email == contact.email,
                    )
                )
            )
            _audit(
                session,
                actor,
                "contact.resubscribe",
                contact.email,
                contact_id=contact.id,
                previous=previous,
                suppression_removed=bool(removed),
            )
        else:
            _audit(
                session,
                actor,
                "contact.status",
                contact.email,
                contact_id=contact.id,
                previous=previous,
                status=status,
            )
    session.flush()
    return len(changing)


def set_status(
    session: Session,
    actor: Actor,
    contact_ids: Iterable[int],
    status: str,
    confirm_resubscribe: bool = False,
) -> int:
    """Change the status of several contacts; returns how many changed."""
    actor.require("edit")
    ids = sorted({int(i) for i in contact_ids})
    contacts: list[Contact] = []
    for start in range(0, len(ids), _BULK):
        contacts += session.scalars(
            select(Contact).where(
                Contact.workspace_id == actor.workspace_id,
                Contact.id.in_(ids[start : start + _BULK]),
            )
        )
    return _change_status(session, actor, contacts, status, confirm_resubscribe)


def delete_contacts(session: Session, actor: Actor, contact_ids: Iterable[int]) -> int:
    """Delete contacts (their memberships, ledger rows and events); returns how many."""
    actor.require("edit")
    ids = sorted({int(i) for i in contact_ids})
    deleted = 0
    for start in range(0, len(ids), _BULK):
        chunk = ids[start : start + _BULK]
        own = list(
            session.scalars(
                select(Contact.id).where(
                    Contact.workspace_id == actor.workspace_id, Contact.id.in_(chunk)
                )
            )
        )
        if not own:
            continue
        session.execute(delete(ListMembership).where(ListMembership.contact_id.in_(own)))
        # Neither the ledger nor events have foreign keys (core.models): the contact's
        # events and those of the messages sent to it go first, then its ledger rows.
        sent_to = select(Message.id).where(
            Message.contact_id.in_(own), Message.workspace_id == actor.workspace_id
        )
        session.execute(
            delete(Event).where(
                Event.workspace_id == actor.workspace_id,
                or_(Event.contact_id.in_(own), Event.message_id.in_(sent_to)),
            ),
            execution_options={"synchronize_session": False},
        )
        session.execute(
            delete(Message).where(
                Message.contact_id.in_(own), Message.workspace_id == actor.workspace_id
            )
        )
        deleted += rowcount(
            session.execute(
                delete(Contact).where(Contact.id.in_(own)),
                execution_options={"synchronize_session": False},
            )
        )
    if deleted:
        _audit(session, actor, "contact.delete", f"{deleted} contact(s)", ids=ids[:100])
    session.expire_all()
    return deleted


# --- detail view ----------------------------------------------------------------------------


@dataclass
class Activity:
    """A contact's email history: messages received and what happened to them."""

    messages: list[dict[str, Any]]
    counts: dict[str, int]
    events: list[dict[str, Any]]


def contact_activity(session: Session, actor: Actor, contact_id: int, limit: int = 50) -> Activity:
    """The contact's messages (a campaign's or an automation's, with its step) and events,
    newest first."""
    contact = get_contact(session, actor, contact_id)
    messages = [
        {
            "campaign": campaign or "",
            "automation": automation or "",
            "step": step or "",
            "status": status,
            "sent_at": sent_at,
            "queued_at": queued_at,
        }
        for campaign, automation, step, status, sent_at, queued_at in session.execute(
            select(
                Campaign.name,
                Automation.name,
                Message.step_path,
                Message.status,
                Message.sent_at,
                Message.queued_at,
            )
            .outerjoin(Campaign, Campaign.id == Message.campaign_id)
            .outerjoin(Automation, Automation.id == Message.automation_id)
            .where(Message.contact_id == contact.id, Message.workspace_id == actor.workspace_id)
            .order_by(Message.queued_at.desc(), Message.id.desc())
            .limit(limit)
        )
    ]
    counts = dict(
        session.execute(
            select(Event.type, func.count())
            .where(Event.contact_id == contact.id, Event.workspace_id == actor.workspace_id)
            .group_by(Event.type)
        ).all()
    )
    events = [
        {
            "type": type_,
            "at": at,
            "url": url,
            "bounce_type": bounce,
            "campaign": campaign or "",
            "automation": automation or "",
        }
        for type_, at, url, bounce, campaign, automation in session.execute(
            select(
                Event.type,
                Event.occurred_at,
                Event.url,
                Event.bounce_type,
                Campaign.name,
                Automation.name,
            )
            .outerjoin(Campaign, Campaign.id == Event.campaign_id)
            .outerjoin(Message, Message.id == Event.message_id)
            .outerjoin(Automation, Automation.id == Message.automation_id)
            .where(Event.contact_id == contact.id, Event.workspace_id == actor.workspace_id)
            .order_by(Event.occurred_at.desc())
            .limit(limit)
        )
    ]
    return Activity(messages=messages, counts=counts, events=events)


def status_history(session: Session, actor: Actor, contact_id: int) -> list[AuditLog]:
    """Recorded status changes of a contact, newest first."""
    contact = get_contact(session, actor, contact_id)
    return [
        row
        for row in session.scalars(
            select(AuditLog)
            .where(
                AuditLog.workspace_id == actor.workspace_id,
                AuditLog.action.in_(("contact.status", "contact.resubscribe")),
                AuditLog.target == contact.email,
            )
            .order_by(AuditLog.created_at.desc(), AuditLog.id.desc())
            .limit(100)
        )
    ]
