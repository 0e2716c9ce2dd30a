"""What the public service does with a signup form: show it, take a submission, confirm.

The answer to a submission depends only on the form, never on the address: whether it is
new, subscribed, unsubscribed or suppressed, and whether a bot filled the honeypot, the
person sees the same page ("check your inbox" on a double-opt-in form, the success
message otherwise). Mail is never sent here: a confirmation or welcome mail is queued for
the worker once the transaction commits (core.forms.mail).

So the public service does not subscribe anybody on the request path: it checks a post
(`check_submission`, no database), appends it to the signup inbox and answers; the worker
runs the subscription (`subscribe_checked`) a moment later (core.forms.inbox). `submit`
does both at once in the caller's transaction, for the CLI and tests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.accounts.auth import normalize_email
from core.contacts.fields import FIELD_LABELS, coerce_value, list_custom_fields
from core.forms import throttle
from core.forms.service import (
    DEFAULT_CHECK_INBOX,
    DEFAULT_CONSENT,
    DEFAULT_SUCCESS,
    HONEYPOT,
    STAMP,
    STANDARD_FORM_FIELDS,
)
from core.forms.subscribe import (
    BLOCKING,
    Mails,
    Shown,
    Signup,
    subscribe_many,
)
from core.infra import clock
from core.infra.config import settings
from core.infra.errors import InvalidToken, NotFound, ValidationFailed
from core.infra.permissions import Actor
from core.infra.tokens import sign, unsign
from core.models import (
    Consent,
    Contact,
    ContactList,
    Form,
    ListMembership,
    Suppression,
    Workspace,
)
from core.models.statuses import ContactStatus

log = logging.getLogger(__name__)

MAX_VALUE = 200
MAX_AGENT = 500


class UnknownFields(ValidationFailed):
    """The submission carries fields the form does not ask (400)."""


class TooManyRequests(ValidationFailed):
    """Too many submissions from one client (429)."""


# --- what the hosted page shows ------------------------------------------------------------


@dataclass(frozen=True)
class PublicField:
    key: str
    label: str
    required: bool
    type: str = "text"


@dataclass(frozen=True)
class PublicForm:
    id: str
    workspace_id: int
    workspace_name: str
    name: str
    fields: tuple[PublicField, ...]
    consent_text: str
    double_opt_in: bool  # the form's own flag or any of its lists
    success_message: str
    check_inbox_message: str
    redirect_url: str
    list_ids: tuple[int, ...] = ()
    double_list_ids: frozenset[int] = frozenset()  # the lists whose opt-in is double

    @property
    def answer(self) -> str:
        """The one message every submission gets (see the module doc)."""
        return self.check_inbox_message if self.double_opt_in else self.success_message


def _lists(session: Session, workspace_id: int, list_ids: Any) -> list[ContactList]:
    """The lists among `list_ids` that still exist in the workspace."""
    if not list_ids:
        return []
    return list(
        session.scalars(
            select(ContactList)
            .where(
                ContactList.workspace_id == workspace_id,
                ContactList.id.in_([int(i) for i in list_ids]),
            )
            .order_by(ContactList.id)
        )
    )


def public_form(session: Session, form_id: str) -> PublicForm:
    """The form as the public page shows it; NotFound for an unknown id."""
    form = session.get(Form, str(form_id)[:16])
    if form is None:
        raise NotFound("No such form.")
    workspace = session.get(Workspace, form.workspace_id)
    assert workspace is not None  # a foreign key with ON DELETE CASCADE
    actor = Actor.system(form.workspace_id)
    # The custom fields' labels and types, read only when the form asks one.
    asks_custom = any(spec["key"] not in STANDARD_FORM_FIELDS for spec in form.fields)
    custom = {f.key: f for f in list_custom_fields(session, actor)} if asks_custom else {}
    fields = []
    for spec in form.fields:
        key = spec["key"]
        if key in STANDARD_FORM_FIELDS:
            fields.append(PublicField(key, FIELD_LABELS[key], bool(spec.get("required"))))
        elif key in custom:  # a custom field deleted since is no longer asked
            c = custom[key]
            fields.append(PublicField(key, c.label, bool(spec.get("required")), c.type))
    # Only public lists: a list made private since the form was saved is no longer joined.
    lists = [
        lst
        for lst in _lists(session, form.workspace_id, form.list_ids)
        if lst.visibility == "public"
    ]
    name = workspace.from_name or workspace.name
    return PublicForm(
        id=form.id,
        workspace_id=form.workspace_id,
        workspace_name=name,
        name=form.name,
        fields=tuple(fields),
        consent_text=form.consent_text or DEFAULT_CONSENT.format(workspace=name),
        double_opt_in=form.double_opt_in or any(lst.opt_in == "double" for lst in lists),
        success_message=form.success_message or DEFAULT_SUCCESS,
        check_inbox_message=form.check_inbox_message or DEFAULT_CHECK_INBOX,
        redirect_url=form.redirect_url,
        list_ids=tuple(lst.id for lst in lists),
        double_list_ids=frozenset(lst.id for lst in lists if lst.opt_in == "double"),
    )


def fill_stamp(form_id: str, at: float | None = None) -> str:
    """The signed time the page was served; a post sooner than the minimum is a bot's."""
    return sign("form-fill", form_id, int(time.time() if at is None else at))


def _filled_by_a_person(form_id: str, stamp: str, now: float) -> bool:
    try:
        parts = unsign("form-fill", stamp or "")
        served = int(parts[1])
    except (InvalidToken, IndexError, ValueError):
        return False
    return parts[0] == form_id and now - served >= settings.form_min_fill_seconds


# --- a submission ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Submitted:
    form: PublicForm
    # What happened, for logs and tests only: the page shows `form.answer` whatever it is.
    outcome: str


@dataclass(frozen=True)
class Checked:
    """A post that passed every check that needs no database: what the inbox keeps."""

    email: str  # normalized
    fields: dict[str, Any]  # the other answers, coerced to their field's type


def check_submission(form: PublicForm, data: Mapping[str, str], now: float) -> Checked | str:
    """Check one post of `form` without touching the database.

    Raises UnknownFields (400) and ValidationFailed (an invalid address or value: 422);
    returns "honeypot" or "too fast" for a bot's post (answered like any other, and
    dropped), else the cleaned values."""
    allowed = {"email", HONEYPOT, STAMP, *(f.key for f in form.fields)}
    if unknown := sorted(k for k in data if k not in allowed):
        raise UnknownFields(f"This form has no field {', '.join(unknown[:5])}.")
    if str(data.get(HONEYPOT) or "").strip():
        return "honeypot"
    if not _filled_by_a_person(form.id, str(data.get(STAMP) or ""), now):
        return "too fast"
    email = normalize_email(str(data.get("email") or "")[:320])
    fields: dict[str, Any] = {}
    for spec in form.fields:
        value = str(data.get(spec.key) or "").strip()
        if spec.required and not value:
            raise ValidationFailed(f"{spec.label} is required.")
        if len(value) > MAX_VALUE:
            raise ValidationFailed(f"{spec.label} has at most {MAX_VALUE} characters.")
        if not value:
            continue
        if spec.key in STANDARD_FORM_FIELDS:
            fields[spec.key] = value[:64] if spec.key == "phone" else value
            continue
        try:
            coerced = coerce_value(spec.type, value)
        except ValidationFailed as exc:
            raise ValidationFailed(f"{spec.label}: {exc}") from None
        if coerced is not None:
            fields[spec.key] = coerced
    return Checked(email, fields)


def submit(
    session: Session,
    form_id: str,
    data: Mapping[str, str],
    ip: str = "",
    user_agent: str = "",
    now: datetime | None = None,
) -> Submitted:
    """Take one post of a form and subscribe it now, in the caller's transaction (the
    public service goes through the signup inbox instead: core.forms.inbox).

    Raises NotFound (no such form), UnknownFields (400), ValidationFailed (invalid address
    or value: 422) and TooManyRequests (429); every other case returns, with the same
    answer for the person (see the module doc)."""
    at = now or clock.now()
    form = public_form(session, form_id)
    checked = check_submission(form, data, at.timestamp())
    if isinstance(checked, str):
        return Submitted(form, checked)
    if not throttle.take(
        session,
        throttle.ip_key(ip),
        settings.form_posts_per_ip_per_hour,
        timedelta(hours=1),
        at,
        exact=False,
    ):
        raise TooManyRequests("Too many sign-ups from your network. Please try again later.")
    shown = Shown(ip[:64], (user_agent or "")[:MAX_AGENT], form.consent_text, form.id, at)
    mails = Mails()
    outcome = subscribe_checked(session, form, checked, shown, mails)
    mails.enqueue_each(session)
    log.info("form %s: %s", form.id, outcome)
    return Submitted(form, outcome)


def _blocked(session: Session, workspace_id: int, email: str) -> bool:
    return (
        session.scalar(
            select(Suppression.id).where(
                Suppression.workspace_id == workspace_id,
                Suppression.email == email,
                Suppression.reason.in_(BLOCKING),
            )
        )
        is not None
    )


def subscribe_checked(
    session: Session, form: PublicForm, checked: Checked, shown: Shown, mails: Mails
) -> str:
    """Run one checked post's subscription in the caller's transaction (core.forms.
    subscribe does many at once); the mails it needs go into `mails`."""
    return subscribe_many(session, [Signup(form, checked, shown)], mails)[0]


def _join(session: Session, contact_id: int, list_ids: list[int]) -> None:
    present = set(
        session.scalars(
            select(ListMembership.list_id).where(
                ListMembership.contact_id == contact_id, ListMembership.list_id.in_(list_ids)
            )
        )
    )
    rows = [{"list_id": i, "contact_id": contact_id} for i in list_ids if i not in present]
    if rows:
        session.execute(insert(ListMembership), rows)


def _queue_welcome(session: Session, row: Consent, mails: Mails) -> None:
    form = session.get(Form, row.source_detail) if row.source == "form" else None
    if form is not None and form.welcome_template_id is not None:
        mails.welcomes.append(row.id)


# --- confirmation ----------------------------------------------------------------------------


def confirm_token(request: Consent) -> str:
    return sign("form-confirm", request.workspace_id, request.id)


def confirm_url(request: Consent) -> str:
    return f"{settings.public_base_url.rstrip('/')}/c/{confirm_token(request)}"


@dataclass(frozen=True)
class Confirmation:
    workspace_name: str
    email: str
    done: bool  # already confirmed (the GET page) or confirmed now / before (the POST)


def _request_of(session: Session, token: str, now: datetime) -> Consent:
    parts = unsign("form-confirm", token)
    try:
        ws, request_id = int(parts[0]), int(parts[1])
    except (IndexError, ValueError) as exc:
        raise InvalidToken("malformed token") from exc
    request = session.get(Consent, request_id)
    if request is None or request.workspace_id != ws or request.action != "request":
        raise NotFound("This confirmation link is no longer valid.")
    if clock.as_utc(request.created_at) + timedelta(days=settings.form_confirm_days) < now:
        raise InvalidToken("This confirmation link has expired. Sign up again to get a new one.")
    return request


def _confirmed(session: Session, request: Consent) -> bool:
    return session.scalar(select(Consent.id).where(Consent.request_id == request.id)) is not None


def _describe(session: Session, request: Consent, done: bool) -> Confirmation:
    workspace = session.get(Workspace, request.workspace_id)
    contact = session.get(Contact, request.contact_id)
    assert workspace is not None and contact is not None  # foreign keys
    return Confirmation(workspace.from_name or workspace.name, contact.email, done)


def describe_confirmation(
    session: Session, token: str, now: datetime | None = None
) -> Confirmation:
    """What the GET page shows; reads only (a link scanner's GET confirms nobody)."""
    request = _request_of(session, token, now or clock.now())
    return _describe(session, request, _confirmed(session, request))


def confirm(
    session: Session,
    token: str,
    ip: str = "",
    user_agent: str = "",
    now: datetime | None = None,
) -> Confirmation:
    """Confirm a double-opt-in request: subscribe, join its lists, record the confirmation,
    queue the welcome mail. A second confirmation of the same link changes nothing.

    InvalidToken for a forged or expired link, NotFound for one whose request is gone (the
    contact was deleted), NotFound too for an address that bounced or complained since."""
    at = now or clock.now()
    request = _request_of(session, token, at)
    if _confirmed(session, request):
        return _describe(session, request, True)
    contact = session.get(Contact, request.contact_id)
    assert contact is not None  # consent rows go with their contact
    if _blocked(session, contact.workspace_id, contact.email) or contact.status in (
        ContactStatus.BOUNCED,
        ContactStatus.COMPLAINED,
    ):
        raise NotFound("This address can no longer be subscribed.")
    was = contact.status
    row = Consent(
        workspace_id=request.workspace_id,
        contact_id=contact.id,
        list_ids=list(request.list_ids),
        action="resubscribe" if was == ContactStatus.UNSUBSCRIBED else "confirm",
        source=request.source,
        source_detail=request.source_detail,
        created_at=at,
        ip=request.ip,
        user_agent=request.user_agent,
        consent_text=request.consent_text,
        request_id=request.id,
        confirmed_at=at,
        confirm_ip=(ip or "")[:64],
        confirm_user_agent=(user_agent or "")[:MAX_AGENT],
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # the same link confirmed at the same moment elsewhere
        return _describe(session, request, True)
    if was != ContactStatus.SUBSCRIBED:
        contact.status = ContactStatus.SUBSCRIBED
        contact.updated_at = at
        session.query(Suppression).filter(
            Suppression.workspace_id == contact.workspace_id,
            Suppression.email == contact.email,
            Suppression.reason == "unsubscribe",
        ).delete(synchronize_session=False)
    lists = _lists(session, contact.workspace_id, request.list_ids)
    _join(session, contact.id, [lst.id for lst in lists])
    session.flush()
    if was != ContactStatus.SUBSCRIBED:
        mails = Mails()
        _queue_welcome(session, row, mails)
        mails.enqueue_each(session)
    return _describe(session, request, True)
