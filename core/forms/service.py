"""Signup forms: create, change, list and delete them (editors and up)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.contacts.fields import FIELD_LABELS, list_custom_fields
from core.infra.errors import NotFound, ValidationFailed
from core.infra.permissions import Actor
from core.models import ContactList, Form, Template

# The standard fields a form may ask besides email.
STANDARD_FORM_FIELDS = ("first_name", "last_name", "company", "city", "country", "phone")
# Fields the public service adds to every form: the honeypot and the signed fill-time stamp.
HONEYPOT = "website"
STAMP = "mw_ts"
RESERVED = frozenset({"email", HONEYPOT, STAMP})
MAX_TEXT = 2000

DEFAULT_CONSENT = "I agree to receive email from {workspace}. I can unsubscribe at any time."
DEFAULT_SUCCESS = "Thank you: you are subscribed."
DEFAULT_CHECK_INBOX = (
    "Almost done: check your inbox and click the link in the mail we sent to confirm your "
    "subscription."
)


@dataclass(frozen=True)
class FieldSpec:
    """One field a form asks besides email."""

    key: str  # "first_name" or a custom field's key
    required: bool = False


@dataclass
class FormInput:
    name: str
    list_ids: list[int]
    fields: list[FieldSpec] = field(default_factory=list)
    double_opt_in: bool = True
    consent_text: str = ""
    success_message: str = ""
    check_inbox_message: str = ""
    redirect_url: str = ""
    welcome_template_id: int | None = None


def field_labels(session: Session, actor: Actor) -> dict[str, str]:
    """key -> label of every field a form may ask (standard first, then custom)."""
    labels = {key: FIELD_LABELS[key] for key in STANDARD_FORM_FIELDS}
    for custom in list_custom_fields(session, actor):
        if custom.key not in labels and custom.key not in RESERVED:
            labels[custom.key] = custom.label
    return labels


def _text(value: str, what: str, limit: int = MAX_TEXT) -> str:
    value = (value or "").strip()
    if len(value) > limit:
        raise ValidationFailed(f"The {what} has at most {limit} characters.")
    return value


def _check_redirect(url: str) -> str:
    url = _text(url, "redirect URL")
    if url and (not url.startswith(("https://", "http://")) or any(c.isspace() for c in url)):
        raise ValidationFailed("The redirect URL must be a full http:// or https:// address.")
    return url


def _check(session: Session, actor: Actor, data: FormInput, own_id: str | None) -> dict[str, Any]:
    name = _text(data.name, "form name", 200)
    if not name:
        raise ValidationFailed("A form needs a name.")
    other = session.scalar(
        select(Form.id).where(Form.workspace_id == actor.workspace_id, Form.name == name)
    )
    if other is not None and other != own_id:
        raise ValidationFailed(f"There is already a form called {name!r}.")
    list_ids = sorted({int(i) for i in data.list_ids})
    if not list_ids:
        raise ValidationFailed("A form subscribes to at least one list.")
    found = {
        lst.id: lst
        for lst in session.scalars(
            select(ContactList).where(
                ContactList.workspace_id == actor.workspace_id, ContactList.id.in_(list_ids)
            )
        )
    }
    if missing := [i for i in list_ids if i not in found]:
        raise ValidationFailed(f"No such list in this workspace: {missing}.")
    if private := [found[i].name for i in list_ids if found[i].visibility != "public"]:
        raise ValidationFailed(
            f"A form subscribes only to public lists; {', '.join(private)} is private "
            "(make it public in the Lists tab first)."
        )
    labels = field_labels(session, actor)
    fields: list[dict[str, Any]] = []
    for spec in data.fields:
        if spec.key not in labels:
            raise ValidationFailed(f"A form cannot ask {spec.key!r}: there is no such field.")
        if any(f["key"] == spec.key for f in fields):
            raise ValidationFailed(f"The field {spec.key!r} is asked twice.")
        fields.append({"key": spec.key, "required": bool(spec.required)})
    template_id = data.welcome_template_id
    if template_id is not None:
        template = session.get(Template, template_id)
        if template is None or template.workspace_id != actor.workspace_id:
            raise ValidationFailed("The welcome template is not in this workspace.")
    return {
        "name": name,
        "list_ids": list_ids,
        "fields": fields,
        "double_opt_in": bool(data.double_opt_in),
        "consent_text": _text(data.consent_text, "consent text"),
        "success_message": _text(data.success_message, "success message"),
        "check_inbox_message": _text(data.check_inbox_message, "check-your-inbox message"),
        "redirect_url": _check_redirect(data.redirect_url),
        "welcome_template_id": template_id,
    }


def create_form(session: Session, actor: Actor, data: FormInput) -> Form:
    actor.require("edit")
    form = Form(workspace_id=actor.workspace_id, **_check(session, actor, data, None))
    session.add(form)
    session.flush()
    return form


def get_form(session: Session, actor: Actor, form_id: str) -> Form:
    actor.require("read")
    form = session.get(Form, str(form_id))
    if form is None or form.workspace_id != actor.workspace_id:
        raise NotFound("No such form in this workspace.")
    return form


def update_form(session: Session, actor: Actor, form_id: str, data: FormInput) -> Form:
    actor.require("edit")
    form = get_form(session, actor, form_id)
    for key, value in _check(session, actor, data, form.id).items():
        setattr(form, key, value)
    session.flush()
    return form


def list_forms(session: Session, actor: Actor) -> list[Form]:
    actor.require("read")
    return list(
        session.scalars(
            select(Form).where(Form.workspace_id == actor.workspace_id).order_by(Form.name)
        )
    )


def delete_form(session: Session, actor: Actor, form_id: str) -> None:
    """Delete a form; its consent rows keep its id (the proof outlives the form)."""
    actor.require("edit")
    session.delete(get_form(session, actor, form_id))
    session.flush()


def form_input(form: Form) -> FormInput:
    """A stored form as the input that would save it unchanged (the edit screen)."""
    return FormInput(
        name=form.name,
        list_ids=list(form.list_ids),
        fields=[FieldSpec(f["key"], bool(f.get("required"))) for f in form.fields],
        double_opt_in=form.double_opt_in,
        consent_text=form.consent_text,
        success_message=form.success_message,
        check_inbox_message=form.check_inbox_message,
        redirect_url=form.redirect_url,
        welcome_template_id=form.welcome_template_id,
    )
