"""What a checked signup does to the audience, for many signups at once.

For each signup, in order (the rules of issue 17):
- a suppressed address (bounced, complained, blocked by hand) gets nothing;
- a subscribed contact joins the form's new lists; those whose opt-in is double only
  through a confirmation mail;
- a new address becomes an unconfirmed contact; a new, unconfirmed or unsubscribed one
  gets a confirmation mail when the form (or one of its lists) is double opt-in, or when
  it had unsubscribed; otherwise it is subscribed at once and gets the welcome mail;
- an address receives at most FORM_CONFIRMATIONS_PER_DAY confirmation mails in any 24
  hours, exactly, whichever process takes its signups;
- every subscription and request appends a consent row with what was shown.

Set-based: a batch reads its contacts, suppressions, memberships and mail counts in one
query each, decides in memory, and writes each table with one statement. The drain
(core.forms.inbox) passes up to SIGNUP_DRAIN_BATCH signups; `signup.submit` passes one.
The addresses are locked first, in a fixed order (PostgreSQL advisory locks, held to the
end of the transaction; on SQLite the transaction holds the write lock already), so that
signups of one address taken by two processes see each other's work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.orm import Session

from core.forms import throttle
from core.forms.service import STANDARD_FORM_FIELDS
from core.infra import jobs
from core.infra.clock import as_utc
from core.infra.config import settings
from core.models import Consent, Contact, Form, FormThrottle, ListMembership, Suppression
from core.models.statuses import ContactStatus

if TYPE_CHECKING:
    from core.forms.signup import Checked, PublicForm

CONFIRM_TASK = "worker.tasks_forms.send_confirmation"
WELCOME_TASK = "worker.tasks_forms.send_welcome"
# Suppression reasons that no signup lifts: the address bounced, complained, or a person
# blocked it. An unsubscribe suppression is lifted by a confirmed double opt-in.
BLOCKING = ("bounce", "complaint", "manual")
_GONE = (ContactStatus.BOUNCED, ContactStatus.COMPLAINED)


@dataclass(frozen=True)
class Shown:
    """Where and when a consent was given, and the text shown with the button."""

    ip: str
    user_agent: str
    consent_text: str
    form_id: str
    at: datetime


@dataclass
class Mails:
    """The mails a subscription asks for: confirmation requests and welcomes (consent row
    ids), queued by the caller once it knows how (one task each, or a task per batch)."""

    confirmations: list[int] = field(default_factory=list)
    welcomes: list[int] = field(default_factory=list)

    def enqueue_each(self, session: Session) -> None:
        """One task per mail, sent after `session` commits."""
        for request_id in self.confirmations:
            jobs.enqueue(session, CONFIRM_TASK, request_id)
        for consent_id in self.welcomes:
            jobs.enqueue(session, WELCOME_TASK, consent_id)


@dataclass(frozen=True)
class Signup:
    """A checked post of `form`, to subscribe."""

    form: PublicForm
    checked: Checked
    shown: Shown


@dataclass
class _Contact:
    """What the batch knows and decides about one contact."""

    workspace_id: int
    email: str
    status: str
    id: int | None = None  # None: created by this batch
    lists: set[int] = field(default_factory=set)
    fields: dict[str, Any] = field(default_factory=dict)  # a new contact's answers
    changed: bool = False  # an existing contact's status changed


@dataclass
class _Consent:
    contact: _Contact
    list_ids: list[int]
    action: str
    shown: Shown
    mail: str = ""  # "confirm" or "welcome"
    id: int | None = None


@dataclass
class _Plan:
    """The writes a batch decided, made at the end (`_write`)."""

    contacts: dict[tuple[int, str], _Contact]
    caps: dict[str, list[datetime]]  # address key -> the confirmation mails booked
    blocked: set[tuple[int, str]]
    joins: list[tuple[_Contact, int]] = field(default_factory=list)
    consents: list[_Consent] = field(default_factory=list)
    booked: list[tuple[str, datetime]] = field(default_factory=list)


def subscribe_many(session: Session, signups: Sequence[Signup], mails: Mails) -> list[str]:
    """Run the signups' subscriptions in the caller's transaction (see the module doc);
    the mails they need go into `mails`. One outcome per signup, for logs and tests
    (nobody is told): "suppressed", "already subscribed", "joined lists", "subscribed",
    "confirmation queued" or "capped"."""
    if not signups:
        return []
    _lock(session, sorted({throttle.address_key(s.checked.email) for s in signups}))
    plan = _read(session, signups)
    outcomes = [_decide(plan, s) for s in signups]
    _write(session, plan, mails)
    return outcomes


def _lock(session: Session, keys: list[str]) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return  # SQLite: the transaction began with BEGIN IMMEDIATE (core.infra.db)
    numbers = sorted({throttle.lock_number(key) for key in keys})
    # In one round trip, in a fixed order so that two batches cannot deadlock.
    session.execute(
        text(
            "SELECT pg_advisory_xact_lock(n) FROM "
            "(SELECT n FROM unnest(CAST(:ns AS bigint[])) AS n ORDER BY n) AS ordered"
        ),
        {"ns": numbers},
    )


def _read(session: Session, signups: Sequence[Signup]) -> _Plan:
    pairs = sorted({(s.form.workspace_id, s.checked.email) for s in signups})
    per_workspace: dict[int, list[str]] = {}
    for ws, email in pairs:
        per_workspace.setdefault(ws, []).append(email)
    contacts: dict[tuple[int, str], _Contact] = {}
    blocked: set[tuple[int, str]] = set()
    # Per workspace (a batch usually has one): the unique (workspace, email) index serves.
    for ws, emails in per_workspace.items():
        found = session.execute(
            select(Contact.id, Contact.email, Contact.status).where(
                Contact.workspace_id == ws, Contact.email.in_(emails)
            )
        )
        for cid, email, status in found:
            contacts[(ws, email)] = _Contact(ws, email, status, cid)
        blocked.update(
            (ws, email)
            for email in session.scalars(
                select(Suppression.email).where(
                    Suppression.workspace_id == ws,
                    Suppression.email.in_(emails),
                    Suppression.reason.in_(BLOCKING),
                )
            )
        )
    by_id = {c.id: c for c in contacts.values()}
    if by_id:
        members = session.execute(
            select(ListMembership.contact_id, ListMembership.list_id).where(
                ListMembership.contact_id.in_(list(by_id))
            )
        )
        for cid, list_id in members:
            by_id[cid].lists.add(list_id)
    keys = sorted({throttle.address_key(email) for _, email in pairs})
    since = min(s.shown.at for s in signups) - timedelta(days=1)
    caps: dict[str, list[datetime]] = {key: [] for key in keys}
    for key, at in session.execute(
        select(FormThrottle.key, FormThrottle.at).where(
            FormThrottle.key.in_(keys), FormThrottle.at > since
        )
    ):
        caps[key].append(at)
    return _Plan(contacts, caps, blocked)


def _decide(plan: _Plan, signup: Signup) -> str:
    form, email, shown = signup.form, signup.checked.email, signup.shown
    ws = form.workspace_id
    contact = plan.contacts.get((ws, email))
    if (ws, email) in plan.blocked or (contact is not None and contact.status in _GONE):
        return "suppressed"
    if contact is not None and contact.status == ContactStatus.SUBSCRIBED:
        new = [i for i in form.list_ids if i not in contact.lists]
        now_ids = [i for i in new if i not in form.double_list_ids]
        later_ids = [i for i in new if i in form.double_list_ids]
        if now_ids:
            _join(plan, contact, now_ids)
            plan.consents.append(_Consent(contact, now_ids, "subscribe", shown))
        if later_ids:
            return _ask_confirmation(plan, contact, later_ids, shown)
        return "joined lists" if now_ids else "already subscribed"
    if contact is None:
        contact = _Contact(ws, email, ContactStatus.UNCONFIRMED, fields=signup.checked.fields)
        plan.contacts[(ws, email)] = contact
    if form.double_opt_in or contact.status == ContactStatus.UNSUBSCRIBED:
        return _ask_confirmation(plan, contact, list(form.list_ids), shown)
    # Single opt-in: a new or unconfirmed address is subscribed at once.
    contact.status = ContactStatus.SUBSCRIBED
    contact.changed = contact.id is not None
    _join(plan, contact, list(form.list_ids))
    plan.consents.append(_Consent(contact, list(form.list_ids), "subscribe", shown, "welcome"))
    return "subscribed"


def _join(plan: _Plan, contact: _Contact, list_ids: list[int]) -> None:
    for list_id in list_ids:
        if list_id not in contact.lists:
            contact.lists.add(list_id)
            plan.joins.append((contact, list_id))


def _ask_confirmation(plan: _Plan, contact: _Contact, list_ids: list[int], shown: Shown) -> str:
    key = throttle.address_key(contact.email)
    window = shown.at - timedelta(days=1)
    if (
        sum(1 for at in plan.caps[key] if as_utc(at) > window)
        >= settings.form_confirmations_per_day
    ):
        return "capped"
    plan.caps[key].append(shown.at)
    plan.booked.append((key, shown.at))
    plan.consents.append(_Consent(contact, list_ids, "request", shown, "confirm"))
    return "confirmation queued"


def _write(session: Session, plan: _Plan, mails: Mails) -> None:
    new = [c for c in plan.contacts.values() if c.id is None]
    if new:
        rows = [
            {
                "workspace_id": c.workspace_id,
                "email": c.email,
                "status": c.status,
                "source": "form",
                "custom_fields": {
                    k: v for k, v in c.fields.items() if k not in STANDARD_FORM_FIELDS
                },
                **{k: v for k, v in c.fields.items() if k in STANDARD_FORM_FIELDS},
            }
            for c in new
        ]
        # Grouped by the columns given: each group is one multi-row INSERT ... RETURNING.
        for group, group_rows in _by_keys(new, rows):
            ids = session.scalars(
                insert(Contact).returning(Contact.id, sort_by_parameter_order=True), group_rows
            ).all()
            for contact, cid in zip(group, ids, strict=True):
                contact.id = cid
    changed = [c for c in plan.contacts.values() if c.changed]
    for c in changed:
        session.execute(
            update(Contact)
            .where(Contact.id == c.id)
            .values(status=c.status, updated_at=_changed_at(plan, c))
        )
    if plan.joins:
        session.execute(
            insert(ListMembership),
            [{"list_id": list_id, "contact_id": c.id} for c, list_id in plan.joins],
        )
    if plan.booked:
        session.execute(insert(FormThrottle), [{"key": k, "at": at} for k, at in plan.booked])
    if not plan.consents:
        return
    rows = [
        {
            "workspace_id": r.contact.workspace_id,
            "contact_id": r.contact.id,
            "list_ids": sorted(r.list_ids),
            "action": r.action,
            "source": "form",
            "source_detail": r.shown.form_id,
            "created_at": r.shown.at,
            "ip": r.shown.ip,
            "user_agent": r.shown.user_agent,
            "consent_text": r.shown.consent_text,
        }
        for r in plan.consents
    ]
    ids = session.scalars(
        insert(Consent).returning(Consent.id, sort_by_parameter_order=True), rows
    ).all()
    welcome_forms = _forms_with_welcome(
        session, {r.shown.form_id for r in plan.consents if r.mail == "welcome"}
    )
    for r, consent_id in zip(plan.consents, ids, strict=True):
        r.id = consent_id
        if r.mail == "confirm":
            mails.confirmations.append(consent_id)
        elif r.mail == "welcome" and r.shown.form_id in welcome_forms:
            mails.welcomes.append(consent_id)


def _by_keys(
    contacts: list[_Contact], rows: list[dict[str, Any]]
) -> list[tuple[list[_Contact], list[dict[str, Any]]]]:
    """The rows grouped by the set of columns they give (an INSERT of many rows needs
    them all alike), each group with its contacts, in order."""
    groups: dict[tuple[str, ...], tuple[list[_Contact], list[dict[str, Any]]]] = {}
    for contact, row in zip(contacts, rows, strict=True):
        group = groups.setdefault(tuple(sorted(row)), ([], []))
        group[0].append(contact)
        group[1].append(row)
    return list(groups.values())


def _changed_at(plan: _Plan, contact: _Contact) -> datetime:
    return max(r.shown.at for r in plan.consents if r.contact is contact)


def _forms_with_welcome(session: Session, form_ids: set[str]) -> set[str]:
    if not form_ids:
        return set()
    return set(
        session.scalars(
            select(Form.id).where(
                Form.id.in_(bindparam("ids", expanding=True)),
                Form.welcome_template_id.is_not(None),
            ),
            {"ids": sorted(form_ids)},
        )
    )
