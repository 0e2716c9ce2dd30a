"""The fields a contact has: standard columns and the workspace's custom field definitions.
Templates (variables), segments (rules) and contacts (forms, import) all read this."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import CustomField
from core.permissions import Actor

CUSTOM_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True)
class FieldInfo:
    name: str  # "first_name" or "custom_fields.plan"
    label: str
    type: str  # text | number | date | boolean
    custom: bool = False


STANDARD_FIELDS: tuple[FieldInfo, ...] = (
    FieldInfo("email", "Email", "text"),
    FieldInfo("first_name", "First name", "text"),
    FieldInfo("last_name", "Last name", "text"),
    FieldInfo("company", "Company", "text"),
    FieldInfo("city", "City", "text"),
    FieldInfo("country", "Country", "text"),
    FieldInfo("phone", "Phone", "text"),
    FieldInfo("status", "Status", "text"),
    FieldInfo("source", "Source", "text"),
    FieldInfo("created_at", "Created", "date"),
    FieldInfo("updated_at", "Updated", "date"),
)


def list_custom_fields(session: Session, actor: Actor) -> list[CustomField]:
    actor.require("read")
    return list(
        session.scalars(
            select(CustomField)
            .where(CustomField.workspace_id == actor.workspace_id)
            .order_by(CustomField.key)
        )
    )


def all_fields(session: Session, actor: Actor) -> list[FieldInfo]:
    """Standard fields, then the workspace's custom fields as `custom_fields.KEY`."""
    custom = [
        FieldInfo(f"custom_fields.{f.key}", f.label, f.type, custom=True)
        for f in list_custom_fields(session, actor)
    ]
    return [*STANDARD_FIELDS, *custom]
