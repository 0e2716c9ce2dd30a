"""The mails a signup sends, composed and sent by the worker (never on the request path):
the confirmation link of a double opt-in, and the form's welcome template."""

from __future__ import annotations

import html as html_lib
import logging

from sqlalchemy.orm import Session

from core.content.rendering import MailContext, compile_template, render_for_contact
from core.forms.signup import BLOCKING, confirm_url
from core.infra import clock
from core.infra.config import settings
from core.ingest.tracking import unsubscribe_url
from core.mail.compose import build_mime
from core.mail.transports import Outgoing, get_transport
from core.models import Consent, Contact, Form, Suppression, Template, Workspace
from core.models.statuses import ContactStatus

log = logging.getLogger(__name__)


def _sender(workspace: Workspace) -> tuple[str, str]:
    return (workspace.from_email or settings.system_from_email), (
        workspace.from_name or workspace.name
    )


def _blocked(session: Session, contact: Contact) -> bool:
    if contact.status in (ContactStatus.BOUNCED, ContactStatus.COMPLAINED):
        return True
    return (
        session.query(Suppression.id)
        .filter(
            Suppression.workspace_id == contact.workspace_id,
            Suppression.email == contact.email,
            Suppression.reason.in_(BLOCKING),
        )
        .first()
        is not None
    )


def confirmation_text(workspace_name: str, days: float) -> str:
    return (
        f"Someone, hopefully you, asked to receive email from {workspace_name} at this "
        f"address. To confirm, open the link below within {days:g} days and press "
        '"Confirm my subscription".\n\n'
        "If it was not you, ignore this mail: you will not be subscribed and will not hear "
        "from us again."
    )


def send_confirmation(session: Session, request_id: int) -> str:
    """Mail the confirmation link of a pending request; returns what happened.

    Safe to run twice: a confirmed, expired or vanished request sends nothing, and the
    message's transport key is the request's, so the outbox keeps one file."""
    request = session.get(Consent, request_id)
    if request is None or request.action != "request":
        return "gone"
    if session.query(Consent.id).filter(Consent.request_id == request.id).first() is not None:
        return "already confirmed"
    age = clock.now() - clock.as_utc(request.created_at)
    if age.total_seconds() > settings.form_confirm_days * 86_400:
        return "expired"
    contact = session.get(Contact, request.contact_id)
    workspace = session.get(Workspace, request.workspace_id)
    assert contact is not None and workspace is not None  # foreign keys
    if _blocked(session, contact):
        return "suppressed"
    sender, name = _sender(workspace)
    link = confirm_url(request)
    text = confirmation_text(name, settings.form_confirm_days)
    body = html_lib.escape(text).replace("\n", "<br>")
    html = (
        f"<html><body><p>{body}</p>"
        f'<p><a href="{html_lib.escape(link)}">Confirm my subscription</a></p>'
        f'<p style="color:#616e7c;font-size:12px">{html_lib.escape(link)}</p></body></html>'
    )
    raw = build_mime(
        sender=sender,
        sender_name=name,
        to=contact.email,
        subject=f"Confirm your subscription to {name}",
        html=html,
        text=f"{text}\n\n{link}\n",
        reply_to=workspace.reply_to,
    )
    get_transport().send(
        Outgoing(raw=raw, sender=sender, recipients=[contact.email], key=f"confirm-{request.id}")
    )
    return "sent"


def send_welcome(session: Session, consent_id: int) -> str:
    """Mail the form's welcome template after a subscription or its confirmation."""
    row = session.get(Consent, consent_id)
    if row is None or row.source != "form":
        return "gone"
    form = session.get(Form, row.source_detail)
    template = (
        session.get(Template, form.welcome_template_id)
        if form is not None and form.welcome_template_id is not None
        else None
    )
    contact = session.get(Contact, row.contact_id)
    workspace = session.get(Workspace, row.workspace_id)
    assert contact is not None and workspace is not None  # foreign keys
    if template is None or contact.status != ContactStatus.SUBSCRIBED or _blocked(session, contact):
        return "skipped"
    unsubscribe = unsubscribe_url(workspace.id, contact.id)
    compiled = compile_template(template.subject or template.name, template.html, template.text)
    rendered = render_for_contact(
        compiled,
        contact,
        MailContext(workspace.id, workspace.name, workspace.postal_address),
        unsubscribe_url=unsubscribe,
    )
    sender, name = _sender(workspace)
    raw = build_mime(
        sender=sender,
        sender_name=name,
        to=contact.email,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        reply_to=workspace.reply_to,
        headers={
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
    get_transport().send(
        Outgoing(raw=raw, sender=sender, recipients=[contact.email], key=f"welcome-{row.id}")
    )
    return "sent"
