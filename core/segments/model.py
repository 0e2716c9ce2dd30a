"""The segment rule model (pydantic) and its validation against a workspace's fields,
lists and campaigns, with messages a marketer can act on."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from core.contacts.fields import STANDARD_FIELDS
from core.infra.errors import ValidationFailed
from core.models import (
    Campaign,
    ContactList,
    CustomField,
)

MAX_DEPTH = 5


NAME_MAX = 200


OPERATORS: dict[str, tuple[str, ...]] = {
    "text": (
        "eq",
        "neq",
        "contains",
        "not_contains",
        "starts_with",
        "ends_with",
        "in",
        "not_in",
        "is_empty",
        "is_not_empty",
    ),
    "number": ("eq", "neq", "gt", "gte", "lt", "lte", "between", "is_empty", "is_not_empty"),
    "date": (
        "before",
        "after",
        "between",
        "within_last_days",
        "not_within_last_days",
        "is_empty",
        "is_not_empty",
    ),
    "boolean": ("is_true", "is_false", "is_empty"),
}


NO_VALUE_OPS = {"is_empty", "is_not_empty", "is_true", "is_false"}


OPERATOR_LABELS = {
    "eq": "is",
    "neq": "is not",
    "contains": "contains",
    "not_contains": "does not contain",
    "starts_with": "starts with",
    "ends_with": "ends with",
    "in": "is one of",
    "not_in": "is none of",
    "is_empty": "is empty",
    "is_not_empty": "is not empty",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "between": "is between",
    "before": "is before",
    "after": "is after",
    "within_last_days": "is within the last … days",
    "not_within_last_days": "is not within the last … days",
    "is_true": "is true",
    "is_false": "is false",
}


# Which event types each activity condition looks for.
ACTIVITY_EVENTS: dict[str, tuple[str, ...]] = {
    "received": ("sent", "delivered"),
    "opened": ("open",),
    "clicked": ("click",),
    "bounced": ("bounce",),
    "unsubscribed": ("unsubscribe",),
}


ACTIVITIES = tuple(ACTIVITY_EVENTS)


STANDARD_TYPES = {f.name: f.type for f in STANDARD_FIELDS}


DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class InvalidRule(ValidationFailed):
    """A segment rule that cannot be evaluated; the message names the rule."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldRule(_Strict):
    field: str
    op: str
    value: Any = None


class ActivityRule(_Strict):
    activity: Literal["received", "opened", "clicked", "bounced", "unsubscribed"]
    campaign_id: int | None = None
    within_days: int | None = Field(default=None, ge=1, le=36500)
    negate: bool = False


class ListRule(_Strict):
    list: int
    negate: bool = False


def _kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return {
            Group: "group",
            FieldRule: "field",
            ActivityRule: "activity",
            ListRule: "list",
        }.get(type(value))
    if isinstance(value, dict):
        for key in ("rules", "field", "activity", "list"):
            if key in value:
                return "group" if key == "rules" else key
        if "match" in value:
            return "group"
    return None


Rule = Annotated[
    Annotated["Group", Tag("group")]
    | Annotated[FieldRule, Tag("field")]
    | Annotated[ActivityRule, Tag("activity")]
    | Annotated[ListRule, Tag("list")],
    Discriminator(
        _kind,
        custom_error_type="unknown_rule",
        custom_error_message="is not a condition or a group (needs 'field', 'activity', 'list' or 'rules')",
    ),
]


class Group(_Strict):
    match: Literal["all", "any"] = "all"
    rules: list[Rule] = Field(default_factory=list)


def _describe_loc(loc: tuple[Any, ...]) -> str:
    """('rules', 1, 'group', 'rules', 0, 'field', 'op') -> 'rule 2 › rule 1, op'."""
    steps: list[str] = []
    attr = ""
    i = 0
    while i < len(loc):
        part = loc[i]
        if part == "rules" and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            steps.append(str(loc[i + 1] + 1))
            i += 2
            if i < len(loc) and loc[i] in ("group", "field", "activity", "list"):
                i += 1
            continue
        attr = str(part)
        i += 1
    where = f"Rule {'.'.join(steps)}" if steps else "The rule tree"
    return f"{where}, '{attr}'" if attr else where


def parse_rules(data: Any) -> Group:
    """The rule tree as a model, or InvalidRule naming the first bad rule (shape only)."""
    if data is None or data == {}:
        return Group()
    if isinstance(data, Group):
        return data
    if not isinstance(data, dict):
        raise InvalidRule("The rule tree must be a group: {'match': 'all', 'rules': [...]}.")
    try:
        return Group.model_validate(data)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        raise InvalidRule(f"{_describe_loc(tuple(first['loc']))}: {first['msg']}.") from None


@dataclass(frozen=True)
class Scope:
    """What a rule tree may refer to in one workspace."""

    workspace_id: int
    custom_types: dict[str, str]
    list_ids: frozenset[int]
    campaign_ids: frozenset[int]


def load_scope(session: Session, workspace_id: int) -> Scope:
    custom = session.execute(
        select(CustomField.key, CustomField.type).where(CustomField.workspace_id == workspace_id)
    ).all()
    lists = session.scalars(select(ContactList.id).where(ContactList.workspace_id == workspace_id))
    campaigns = session.scalars(select(Campaign.id).where(Campaign.workspace_id == workspace_id))
    return Scope(
        workspace_id=workspace_id,
        custom_types={key: type_ for key, type_ in custom},
        list_ids=frozenset(lists),
        campaign_ids=frozenset(campaigns),
    )


def field_type(scope: Scope, name: str) -> str | None:
    if name in STANDARD_TYPES:
        return STANDARD_TYPES[name]
    if name.startswith("custom_fields."):
        return scope.custom_types.get(name.removeprefix("custom_fields."))
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and DATE_RE.match(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _check_value(type_: str, op: str, value: Any) -> Any:
    """The normalized value for (type, op), or a ValueError saying what is expected."""
    if op in NO_VALUE_OPS:
        return None
    if type_ == "text":
        if op in ("in", "not_in"):
            if (
                not isinstance(value, list)
                or not value
                or not all(isinstance(v, str) and v.strip() for v in value)
            ):
                raise ValueError("needs a non-empty list of words")
            return [v.strip() for v in value]
        if not isinstance(value, str) or not value.strip():
            raise ValueError("needs a text value (use 'is empty' to look for blanks)")
        return value.strip()
    if type_ == "number":
        if op == "between":
            if (
                not isinstance(value, list)
                or len(value) != 2
                or not all(_is_number(v) for v in value)
            ):
                raise ValueError("needs two numbers [low, high]")
            if value[0] > value[1]:
                raise ValueError("needs the low number first")
            return [value[0], value[1]]
        if not _is_number(value):
            raise ValueError("needs a number")
        return value
    if type_ == "date":
        if op in ("within_last_days", "not_within_last_days"):
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 36500:
                raise ValueError("needs a whole number of days (1 or more)")
            return value
        if op == "between":
            if not isinstance(value, list) or len(value) != 2:
                raise ValueError("needs two dates [from, to] as YYYY-MM-DD")
            first, last = (_as_date(v) for v in value)
            if first is None or last is None:
                raise ValueError("needs two dates [from, to] as YYYY-MM-DD")
            if first > last:
                raise ValueError("needs the earlier date first")
            return [first.isoformat(), last.isoformat()]
        parsed = _as_date(value)
        if parsed is None:
            raise ValueError("needs a date as YYYY-MM-DD")
        return parsed.isoformat()
    raise ValueError(f"has an unknown type {type_!r}")


def _summary(rule: Any) -> str:
    if isinstance(rule, FieldRule):
        value = "" if rule.value is None else f" {rule.value!r}"
        return f"({rule.field} {rule.op}{value})"
    if isinstance(rule, ActivityRule):
        return f"({'not ' if rule.negate else ''}{rule.activity})"
    if isinstance(rule, ListRule):
        return f"({'not ' if rule.negate else ''}in list {rule.list})"
    return "(group)"


def check_rules(scope: Scope, group: Group) -> Group:
    """Refuse what the workspace cannot evaluate; returns the tree with normalized values."""

    def walk(node: Group, depth: int, path: str) -> Group:
        if depth > MAX_DEPTH:
            raise InvalidRule(
                f"Rule {path or 'tree'}: groups nest at most {MAX_DEPTH} levels deep."
            )
        out: list[Any] = []
        for index, rule in enumerate(node.rules, start=1):
            here = f"{path}.{index}" if path else str(index)
            if isinstance(rule, Group):
                out.append(walk(rule, depth + 1, here))
            elif isinstance(rule, FieldRule):
                type_ = field_type(scope, rule.field)
                if type_ is None:
                    raise InvalidRule(
                        f"Rule {here} {_summary(rule)}: unknown field {rule.field!r}."
                    )
                if rule.op not in OPERATORS[type_]:
                    allowed = ", ".join(OPERATORS[type_])
                    raise InvalidRule(
                        f"Rule {here} {_summary(rule)}: operator {rule.op!r} does not fit a "
                        f"{type_} field (use one of: {allowed})."
                    )
                try:
                    value = _check_value(type_, rule.op, rule.value)
                except ValueError as exc:
                    raise InvalidRule(f"Rule {here} {_summary(rule)}: '{rule.op}' {exc}.") from None
                out.append(FieldRule(field=rule.field, op=rule.op, value=value))
            elif isinstance(rule, ActivityRule):
                if rule.campaign_id is not None and rule.campaign_id not in scope.campaign_ids:
                    raise InvalidRule(
                        f"Rule {here} {_summary(rule)}: no campaign {rule.campaign_id} in this workspace."
                    )
                out.append(rule)
            else:
                if rule.list not in scope.list_ids:
                    raise InvalidRule(
                        f"Rule {here} {_summary(rule)}: no list {rule.list} in this workspace."
                    )
                out.append(rule)
        return Group(match=node.match, rules=out)

    return walk(group, 1, "")


def validate_rules(session: Session, workspace_id: int, data: Any) -> Group:
    """Shape and meaning, against the workspace's fields, lists and campaigns."""
    return check_rules(load_scope(session, workspace_id), parse_rules(data))


def dump_rules(group: Group) -> dict[str, Any]:
    return group.model_dump(mode="json")
