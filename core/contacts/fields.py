"""The fields a contact has: standard columns and the workspace's custom field definitions.
Templates (variables), segments (rules) and contacts (forms, import) all read this."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from core.infra.db import rowcount
from core.infra.errors import NotFound, ValidationFailed
from core.infra.permissions import Actor
from core.models import FIELD_TYPES, AuditLog, Contact, CustomField

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
    # Set by the sunset policy (core.contacts.sunset); empty while the contact is active.
    FieldInfo("inactive_since", "Inactive since (sunset)", "date"),
)
FIELD_LABELS: dict[str, str] = {f.name: f.label for f in STANDARD_FIELDS}
# The standard fields a person types or imports (email first); the rest are kept by the system.
CONTACT_COLUMNS: tuple[str, ...] = (
    "email",
    "first_name",
    "last_name",
    "company",
    "city",
    "country",
    "phone",
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


# --- custom field definitions -------------------------------------------------------------

BOOL_TRUE = {"true", "yes", "y", "1", "t", "on"}
BOOL_FALSE = {"false", "no", "n", "0", "f", "off", ""}
_DATE_FORMATS = ("%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y", "%Y/%m/%d", "%m/%d/%Y")


def check_key(key: str) -> str:
    key = (key or "").strip()
    if not CUSTOM_KEY_RE.match(key):
        raise ValidationFailed(
            f"{key!r} is not a valid field key: start with a lower-case letter, then lower-case "
            "letters, digits or underscores, at most 40 characters."
        )
    if key in {f.name for f in STANDARD_FIELDS} or key == "custom_fields":
        raise ValidationFailed(f"{key!r} is a standard field.")
    return key


def key_from_label(label: str) -> str:
    """A valid custom field key made from a column header ("Plan Tier" -> "plan_tier")."""
    key = re.sub(r"[^a-z0-9]+", "_", (label or "").strip().lower()).strip("_")
    if not key or not key[0].isalpha():
        key = f"f_{key}".rstrip("_")
    key = key[:40].rstrip("_")
    if key in {f.name for f in STANDARD_FIELDS} or key == "custom_fields":
        key = f"{key}_2"
    return key


def coerce_value(field_type: str, value: Any) -> Any:
    """The stored form of `value` for a field of `field_type`; None for empty.

    Raises ValidationFailed when the value does not fit the type. Dates are stored as ISO
    strings (YYYY-MM-DD), numbers as int or float, booleans as true/false."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        if value == "":
            return None
    if field_type == "text":
        return str(value)
    if field_type == "number":
        if isinstance(value, bool):
            raise ValidationFailed(f"{value!r} is not a number.")
        if isinstance(value, int | float):
            number = float(value)
        else:
            text = str(value)
            if text.count(",") == 1 and "." not in text:
                text = text.replace(",", ".")  # a decimal comma, as European files have
            try:
                number = float(text)
            except ValueError:
                raise ValidationFailed(f"{value!r} is not a number.") from None
        if math.isnan(number) or math.isinf(number):
            raise ValidationFailed(f"{value!r} is not a number.")
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if field_type == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in BOOL_TRUE:
            return True
        if text in BOOL_FALSE:
            return False
        raise ValidationFailed(f"{value!r} is not yes/no (true/false).")
    if field_type == "date":
        if isinstance(value, datetime):
            return value.date().isoformat()
        if isinstance(value, date):
            return value.isoformat()
        text = str(value).strip()
        if len(text) >= 10 and text[4] == "-" and (len(text) == 10 or text[10] in "T "):
            text = text[:10]
        for fmt in _DATE_FORMATS:
            try:
                return datetime.strptime(text, fmt).date().isoformat()
            except ValueError:
                continue
        raise ValidationFailed(f"{value!r} is not a date (use YYYY-MM-DD).")
    raise ValidationFailed(f"Unknown field type {field_type!r}.")


def infer_type(values: list[Any]) -> str:
    """The narrowest type every non-empty sample value fits: number, boolean, date or text."""
    samples = [v for v in values if v is not None and str(v).strip() != ""]
    if not samples:
        return "text"
    for field_type in ("number", "boolean", "date"):
        try:
            for value in samples:
                coerce_value(field_type, value)
        except ValidationFailed:
            continue
        # "0"/"1" columns read as numbers; yes/no columns as booleans.
        return field_type
    return "text"


def get_custom_field(session: Session, actor: Actor, field_id: int) -> CustomField:
    actor.require("read")
    field = session.get(CustomField, field_id)
    if field is None or field.workspace_id != actor.workspace_id:
        raise NotFound("No such custom field in this workspace.")
    return field


def create_custom_field(
    session: Session, actor: Actor, key: str, label: str, type_: str = "text"
) -> CustomField:
    actor.require("edit")
    key = check_key(key)
    if type_ not in FIELD_TYPES:
        raise ValidationFailed(f"The type must be one of {', '.join(FIELD_TYPES)}.")
    exists = session.scalar(
        select(CustomField.id).where(
            CustomField.workspace_id == actor.workspace_id, CustomField.key == key
        )
    )
    if exists:
        raise ValidationFailed(f"A field with the key {key!r} already exists.")
    field = CustomField(
        workspace_id=actor.workspace_id, key=key, label=(label or key).strip()[:200], type=type_
    )
    session.add(field)
    session.flush()
    return field


def rename_custom_field(session: Session, actor: Actor, field_id: int, label: str) -> CustomField:
    actor.require("edit")
    field = get_custom_field(session, actor, field_id)
    label = (label or "").strip()
    if not label:
        raise ValidationFailed("The label cannot be empty.")
    field.label = label[:200]
    session.flush()
    return field


def _has_key(session: Session, key: str) -> ColumnElement[bool]:
    if session.get_bind().dialect.name == "postgresql":
        return Contact.custom_fields.op("?")(key)
    return func.json_type(Contact.custom_fields, f'$."{key}"').is_not(None)


def count_field_values(session: Session, actor: Actor, key: str) -> int:
    """How many contacts hold a value for custom field `key`."""
    actor.require("read")
    return (
        session.scalar(
            select(func.count())
            .select_from(Contact)
            .where(Contact.workspace_id == actor.workspace_id, _has_key(session, key))
        )
        or 0
    )


def delete_custom_field(session: Session, actor: Actor, field_id: int) -> int:
    """Delete the definition and every contact's value for it; returns how many had one."""
    actor.require("admin")
    field = get_custom_field(session, actor, field_id)
    where = (Contact.workspace_id == actor.workspace_id, _has_key(session, field.key))
    stripped: ColumnElement[Any]
    if session.get_bind().dialect.name == "postgresql":
        stripped = Contact.custom_fields.op("-")(field.key)
    else:
        stripped = func.json_remove(Contact.custom_fields, f'$."{field.key}"')
    removed = rowcount(
        session.execute(
            update(Contact).where(*where).values(custom_fields=stripped),
            execution_options={"synchronize_session": False},
        )
    )
    session.add(
        AuditLog(
            workspace_id=actor.workspace_id,
            user_id=actor.user_id,
            action="custom_field.delete",
            target=field.key,
            detail={"values_removed": removed},
        )
    )
    session.delete(field)
    session.flush()
    return removed


def field_types(session: Session, actor: Actor) -> dict[str, str]:
    """key -> type for the workspace's custom fields."""
    return {f.key: f.type for f in list_custom_fields(session, actor)}


def validate_custom_values(
    session: Session, actor: Actor, values: dict[str, Any]
) -> dict[str, Any]:
    """`values` coerced to their defined types; unknown keys and bad values raise."""
    types = field_types(session, actor)
    clean: dict[str, Any] = {}
    for key, value in (values or {}).items():
        if key not in types:
            raise ValidationFailed(f"There is no custom field {key!r}.")
        try:
            coerced = coerce_value(types[key], value)
        except ValidationFailed as exc:
            raise ValidationFailed(f"{key}: {exc}") from None
        if coerced is not None:
            clean[key] = coerced
    return clean
