"""The template library: create, edit, duplicate and delete templates, the variables an
editor can insert, preview with a real or sample contact, and test sends."""

from __future__ import annotations

import html as html_lib
import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.contacts.fields import FIELD_LABELS, list_custom_fields
from core.content.rendering import (
    STANDARD_VARIABLES,
    MailContext,
    Rendered,
    TemplateProblem,
    TemplateTooCostly,
    check_template,
    contact_variables,
    html_to_text,
    render_for_contact,
    sample_contact,
)
from core.infra.config import settings
from core.infra.errors import NotFound, ValidationFailed
from core.infra.permissions import Actor
from core.ingest import tracking
from core.models import AuditLog, Campaign, Contact, Template, Variant

# Campaigns in these states will still read the template: deleting it is refused.
BUSY_STATUSES = ("scheduled", "sending")
SORTS = {
    "updated": Template.updated_at.desc(),
    "name": Template.name,
    "created": Template.created_at.desc(),
}
_DATA_IMAGE_RE = re.compile(r"""<img\b[^>]*\bsrc\s*=\s*["']?\s*data:""", re.IGNORECASE)
SYSTEM_LABELS = {
    "unsubscribe_url": "Unsubscribe link",
    "preferences_url": "Preference centre link",
    "workspace_name": "Workspace name",
    "postal_address": "Postal address",
    "campaign_name": "Campaign name",
}


@dataclass(frozen=True)
class TemplateDraft:
    """What the editor holds; `text` None or blank means "generate it from the HTML"."""

    name: str
    subject: str
    html: str
    text: str | None = None


@dataclass(frozen=True)
class Variable:
    name: str  # "first_name", "custom_fields.plan", "unsubscribe_url"
    label: str
    group: str  # "Contact" | "Custom field" | "System"

    def snippet(self, fallback: str = "") -> str:
        """What "Insert variable" puts in the template."""
        if fallback and self.group != "System":
            return f"{{{{ {self.name} | default({json.dumps(fallback, ensure_ascii=False)}) }}}}"
        return f"{{{{ {self.name} }}}}"


@dataclass(frozen=True)
class Preview:
    rendered: Rendered
    warnings: list[str]
    recipient: str


def list_variables(session: Session, actor: Actor) -> list[Variable]:
    """Standard fields, the workspace's custom fields (read now, so new ones appear at
    once) and the system variables."""
    standard = [Variable(n, FIELD_LABELS[n], "Contact") for n in STANDARD_VARIABLES]
    custom = [
        Variable(f"custom_fields.{f.key}", f.label or f.key, "Custom field")
        for f in list_custom_fields(session, actor)
    ]
    system = [Variable(n, label, "System") for n, label in SYSTEM_LABELS.items()]
    return [*standard, *custom, *system]


def known_names(session: Session, actor: Actor) -> set[str]:
    return {v.name for v in list_variables(session, actor)}


def list_templates(
    session: Session, actor: Actor, search: str = "", sort: str = "updated"
) -> list[Template]:
    """Templates whose name or subject contains `search`, newest change first by default."""
    actor.require("read")
    query = select(Template).where(Template.workspace_id == actor.workspace_id)
    search = (search or "").strip().lower()
    if search:
        pattern = f"%{search}%"
        query = query.where(
            func.lower(Template.name).like(pattern) | func.lower(Template.subject).like(pattern)
        )
    order = SORTS.get(sort)
    if order is None:
        raise ValidationFailed(f"Sort by one of: {', '.join(SORTS)}.")
    return list(session.scalars(query.order_by(order, Template.id.desc())))


def get_template(session: Session, actor: Actor, template_id: int) -> Template:
    actor.require("read")
    template = session.get(Template, template_id)
    if template is None or template.workspace_id != actor.workspace_id:
        raise NotFound("No such template in this workspace.")
    return template


def validate_draft(session: Session, actor: Actor, draft: TemplateDraft) -> list[str]:
    """Raise on what cannot be saved (TemplateProblem with the line); return warnings."""
    if not draft.name.strip():
        raise ValidationFailed("The template needs a name.")
    if len(draft.name.strip()) > 200:
        raise ValidationFailed("The name is longer than 200 characters.")
    return check_content(session, actor, draft)


def check_content(session: Session, actor: Actor, draft: TemplateDraft) -> list[str]:
    """Subject, HTML and text: raise on errors, return warnings (the name is not checked)."""
    actor.require("read")
    if len(draft.subject) > 998 or "\n" in draft.subject:
        raise ValidationFailed("The subject is one line of at most 998 characters.")
    if _DATA_IMAGE_RE.search(draft.html):
        raise ValidationFailed(
            "Embedded (base64) images are not allowed: many mail clients block them. "
            "Host the image and insert it by URL."
        )
    compiled, warnings = check_template(
        draft.subject, draft.html, draft.text, known_names(session, actor)
    )
    # A template that is too costly for sample data would be for every recipient.
    keys = [f.key for f in list_custom_fields(session, actor)]
    sample = contact_variables(
        sample_contact(keys),
        unsubscribe_url="https://example.com/u",
        preferences_url="https://example.com/p",
    )
    try:
        compiled.render(sample)
    except TemplateTooCostly:
        raise
    except TemplateProblem:
        pass  # other render errors depend on the data; preview and sending name them
    if not draft.subject.strip():
        warnings.append("There is no default subject: each campaign will have to set one.")
    return warnings


def _check_name_free(session: Session, actor: Actor, name: str, except_id: int | None) -> None:
    query = select(Template.id).where(
        Template.workspace_id == actor.workspace_id, func.lower(Template.name) == name.lower()
    )
    if except_id is not None:
        query = query.where(Template.id != except_id)
    if session.scalar(query.limit(1)) is not None:
        raise ValidationFailed(f"A template named “{name}” already exists.")


def _clean_text(draft: TemplateDraft) -> str | None:
    return draft.text if draft.text and draft.text.strip() else None


def create_template(
    session: Session, actor: Actor, draft: TemplateDraft
) -> tuple[Template, list[str]]:
    actor.require("edit")
    warnings = validate_draft(session, actor, draft)
    name = draft.name.strip()
    _check_name_free(session, actor, name, None)
    template = Template(
        workspace_id=actor.workspace_id,
        name=name,
        subject=draft.subject.strip(),
        html=draft.html,
        text=_clean_text(draft),
    )
    session.add(template)
    session.flush()
    return template, warnings


def update_template(
    session: Session, actor: Actor, template_id: int, draft: TemplateDraft
) -> tuple[Template, list[str]]:
    actor.require("edit")
    template = get_template(session, actor, template_id)
    warnings = validate_draft(session, actor, draft)
    name = draft.name.strip()
    _check_name_free(session, actor, name, template.id)
    template.name = name
    template.subject = draft.subject.strip()
    template.html = draft.html
    template.text = _clean_text(draft)
    session.flush()
    return template, warnings


def duplicate_template(session: Session, actor: Actor, template_id: int) -> Template:
    actor.require("edit")
    source = get_template(session, actor, template_id)
    base = f"Copy of {source.name}"[:190]
    name, n = base, 1
    while True:
        try:
            _check_name_free(session, actor, name, None)
            break
        except ValidationFailed:
            n += 1
            name = f"{base} ({n})"
    copy = Template(
        workspace_id=actor.workspace_id,
        name=name,
        subject=source.subject,
        html=source.html,
        text=source.text,
    )
    session.add(copy)
    session.flush()
    return copy


def campaigns_using(session: Session, actor: Actor, template_id: int) -> list[Campaign]:
    """Scheduled or sending campaigns whose variants use the template."""
    return list(
        session.scalars(
            select(Campaign)
            .join(Variant, Variant.campaign_id == Campaign.id)
            .where(
                Campaign.workspace_id == actor.workspace_id,
                Variant.template_id == template_id,
                Campaign.status.in_(BUSY_STATUSES),
            )
            .distinct()
            .order_by(Campaign.name)
        )
    )


def delete_template(session: Session, actor: Actor, template_id: int) -> None:
    """Delete, unless a scheduled or sending campaign uses the template."""
    actor.require("edit")
    template = get_template(session, actor, template_id)
    busy = campaigns_using(session, actor, template.id)
    if busy:
        names = ", ".join(f"“{c.name}” ({c.status})" for c in busy)
        raise ValidationFailed(
            f"“{template.name}” is used by {names}. Cancel or finish "
            f"{'that campaign' if len(busy) == 1 else 'those campaigns'} first."
        )
    session.add(
        AuditLog(
            workspace_id=actor.workspace_id,
            user_id=actor.user_id,
            action="template_deleted",
            target=template.name[:200],
            detail={"template_id": template.id},
        )
    )
    session.delete(template)
    session.flush()


_TAG_RE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)


def tidy_editor_html(html: str) -> str:
    """Undo what a rich-text editor does to template tags typed into it: it stores
    `{% if n > 1 %}` as `{% if n &gt; 1 %}` and spaces as non-breaking ones."""

    def fix(match: re.Match[str]) -> str:
        return html_lib.unescape(match.group(0)).replace("\xa0", " ")

    return _TAG_RE.sub(fix, html)


def plain_text(html: str) -> str:
    """The plain-text part generated from the HTML (what the editor offers to edit)."""
    return html_to_text(html)


def _context(session: Session, actor: Actor, campaign_name: str) -> MailContext:
    from core.accounts.workspaces import get_workspace

    workspace = get_workspace(session, actor)
    return MailContext(
        workspace_id=workspace.id,
        workspace_name=workspace.name,
        postal_address=workspace.postal_address,
        campaign_name=campaign_name,
    )


def preview(
    session: Session,
    actor: Actor,
    draft: TemplateDraft,
    contact_id: int | None = None,
    campaign_name: str = "Preview campaign",
) -> Preview:
    """The draft rendered for a contact of the workspace, or for sample data."""
    actor.require("read")
    warnings = check_content(session, actor, draft)
    compiled, _ = check_template(draft.subject, draft.html, draft.text, ())
    contact: dict[str, Any] | Contact
    if contact_id is None:
        keys = [f.key for f in list_custom_fields(session, actor)]
        contact = sample_contact(keys)
        recipient = f"sample data ({contact['email']})"
    else:
        from core.contacts.service import get_contact

        contact = get_contact(session, actor, contact_id)
        recipient = contact.email
    # A preview or test mail may be forwarded or clicked by a colleague: its unsubscribe
    # link names no contact, so it can never unsubscribe the previewed person; it opens a
    # page saying this was a test and nothing changed.
    ctx = _context(session, actor, campaign_name)
    unsubscribe = tracking.unsubscribe_url_of_test_send(ctx.workspace_id)
    rendered = render_for_contact(compiled, contact, ctx, unsubscribe_url=unsubscribe)
    return Preview(rendered=rendered, warnings=warnings, recipient=recipient)


def send_test(
    session: Session,
    actor: Actor,
    draft: TemplateDraft,
    to: str,
    contact_id: int | None = None,
) -> str:
    """Render the draft (for a contact or sample data) and send it to `to` through the
    configured transport; returns the provider's message id."""
    from core.accounts.auth import normalize_email
    from core.accounts.workspaces import get_workspace
    from core.mail.compose import build_mime
    from core.mail.transports import Outgoing, get_transport

    actor.require("edit")
    address = normalize_email(to)
    result = preview(session, actor, draft, contact_id, campaign_name="Test send")
    workspace = get_workspace(session, actor)
    sender = workspace.from_email or settings.system_from_email
    raw = build_mime(
        sender=sender,
        sender_name=workspace.from_name or workspace.name,
        to=address,
        subject=f"[Test] {result.rendered.subject}",
        html=result.rendered.html,
        text=result.rendered.text,
        reply_to=workspace.reply_to,
        # As a campaign's mail has them, so a test shows what the mail client offers.
        headers={
            "List-Unsubscribe": f"<{tracking.unsubscribe_url_of_test_send(workspace.id)}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
    provider_id = get_transport().send(
        Outgoing(
            raw=raw,
            sender=sender,
            recipients=[address],
            configuration_set=workspace.ses_configuration_set,
        )
    )
    session.add(
        AuditLog(
            workspace_id=actor.workspace_id,
            user_id=actor.user_id,
            action="template_test_sent",
            target=address,
            detail={"template": draft.name},
        )
    )
    return provider_id
