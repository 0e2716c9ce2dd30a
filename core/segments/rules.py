"""Segments: a rule tree over contact fields, list membership and email activity,
validated, then compiled to one SQL condition that the database evaluates.

Rule format (stored as JSON on `Segment.rules`):

    group    = {"match": "all" | "any", "rules": [rule | group, ...]}   nesting up to 5 levels
    field    = {"field": NAME, "op": OP, "value": V}
    activity = {"activity": "received" | "opened" | "clicked" | "bounced" | "unsubscribed",
                "campaign_id": ID | None, "within_days": N | None, "negate": bool}
    list     = {"list": LIST_ID, "negate": bool}

Custom field values are compared by their defined type, reading the JSON value's own type:
a number field holds JSON numbers, a boolean field JSON true/false, a date field a string
that begins with YYYY-MM-DD, a text field a string. Any other value counts as empty.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import (
    ColumnClause,
    ColumnElement,
    Float,
    Select,
    String,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.orm import Session

from core.contacts.fields import CUSTOM_KEY_RE, STANDARD_FIELDS, FieldInfo, all_fields
from core.infra.clock import now
from core.infra.db import fold, like_escape
from core.infra.errors import NotFound, ValidationFailed
from core.infra.permissions import Actor
from core.models import (
    Campaign,
    Contact,
    ContactList,
    CustomField,
    Event,
    ListMembership,
    Segment,
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

# Campaign states in which a campaign will still resolve its audience: its segment stays.
CAMPAIGN_STATES_USING_SEGMENT = ("scheduled", "sending", "paused")

STANDARD_TYPES = {f.name: f.type for f in STANDARD_FIELDS}
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class InvalidRule(ValidationFailed):
    """A segment rule that cannot be evaluated; the message names the rule."""


class SegmentInUse(ValidationFailed):
    """A segment that a scheduled or running campaign still needs."""


# --- The rule model -------------------------------------------------------------------


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


Group.model_rebuild()


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


# --- Semantic validation ----------------------------------------------------------------


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


# --- Compilation to SQL ----------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


class _Compiler:
    """Builds one boolean expression over Contact; every leaf is two-valued (never NULL)."""

    def __init__(
        self,
        dialect: str,
        scope: Scope,
        at: datetime,
        fits_hash: Callable[[Select[Any]], bool] | None = None,
    ) -> None:
        self.pg = dialect == "postgresql"
        self.scope = scope
        # Whether the database evaluates a subquery's ids once, as a hash or index (_found).
        self.fits_hash = fits_hash
        self.any_depth = 0  # how many "any" groups enclose the rule being compiled
        self.now = _utc(at)
        # SQLite stores naive UTC strings; compare against naive UTC values there.
        self.now_param = self.now if self.pg else self.now.replace(tzinfo=None)
        self.today = self.now.date()

    # Values -------------------------------------------------------------------------
    def _dt(self, d: date) -> datetime:
        value = datetime(d.year, d.month, d.day, tzinfo=UTC)
        return value if self.pg else value.replace(tzinfo=None)

    @staticmethod
    def _key(name: str) -> str:
        """The custom field key of `custom_fields.KEY`; it is inlined into SQL, so checked."""
        key = name.removeprefix("custom_fields.")
        if not CUSTOM_KEY_RE.match(key):
            raise InvalidRule(f"Invalid custom field key {key!r}.")
        return key

    def _sqlite_custom(self, key: str, type_: str) -> ColumnElement[Any]:
        """SQLite: the custom field's value when its JSON type fits `type_`, else NULL."""
        cf = Contact.custom_fields
        path: ColumnClause[str] = literal_column(f"'$.{key}'")
        jtype = func.json_type(cf, path)
        raw = func.json_extract(cf, path, type_=String)
        if type_ == "number":
            return case((jtype.in_(("integer", "real")), cast(raw, Float)), else_=None)
        if type_ == "boolean":
            return case((jtype.in_(("true", "false")), jtype), else_=None)
        if type_ == "date":
            return case(
                (and_(jtype == "text", raw.like("____-__-__%")), func.substr(raw, 1, 10)),
                else_=None,
            )
        return case((jtype == "text", raw), else_=None)

    # Leaves -------------------------------------------------------------------------
    def field(self, rule: FieldRule) -> ColumnElement[bool]:
        type_ = field_type(self.scope, rule.field)
        assert type_ is not None  # compile_rules ran check_rules, which refuses unknown fields
        custom = rule.field.startswith("custom_fields.")
        op, value = rule.op, rule.value
        if custom and self.pg:
            return self._pg_custom(self._key(rule.field), type_, op, value)
        if custom:
            column = self._sqlite_custom(self._key(rule.field), type_)
        else:
            column = getattr(Contact, rule.field)
        if type_ == "text":
            test = self._text(column, op, value, nullable=custom)
        elif type_ == "number":
            test = self._number(column, op, value)
        elif type_ == "date":
            test = self._custom_date(column, op, value) if custom else self._date(column, op, value)
        else:
            test = self._boolean(column, op)
        # A missing custom value makes a comparison NULL; keep every leaf two-valued so a
        # caller may negate the whole condition.
        return func.coalesce(test, false()) if custom else test

    def _pg_custom(self, key: str, type_: str, op: str, value: Any) -> ColumnElement[bool]:
        """Custom fields on PostgreSQL, with one JSON lookup for most rows.

        Same meaning as the CASE form: the comparison runs on `->>` first and the JSON type
        is checked only for rows that pass it, so a row pays for the second lookup rarely."""
        node = Contact.custom_fields.op("->")(literal_column(f"'{key}'"))
        jtype = func.jsonb_typeof(node)
        if type_ == "boolean":
            if op == "is_empty":
                return func.coalesce(jtype != "boolean", true())
            wanted = "true" if op == "is_true" else "false"
            return func.coalesce(node == literal_column(f"'{wanted}'::jsonb"), false())
        raw = Contact.custom_fields.op("->>", return_type=String)(literal_column(f"'{key}'"))
        if type_ == "number":
            # The cast must stay behind the type test: only CASE guarantees that order.
            number = case((jtype == "number", cast(raw, Float)), else_=None)
            return func.coalesce(self._number(number, op, value), false())
        if type_ == "date":
            # Only a JSON string can read as YYYY-MM-DD... through ->>, so the pattern is
            # the type test.
            dated = raw.like("____-__-__%")
            if op in ("is_empty", "is_not_empty"):
                present = func.coalesce(dated, false())
                return present if op == "is_not_empty" else not_(present)
            test = self._custom_date(func.substr(raw, 1, 10), op, value)
            return func.coalesce(and_(test, dated), false())
        if op in ("is_empty", "is_not_empty"):
            present = func.coalesce(and_(raw != "", jtype == "string"), false())
            return present if op == "is_not_empty" else not_(present)
        positive = {"neq": "eq", "not_contains": "contains", "not_in": "in"}.get(op, op)
        hit = func.coalesce(
            and_(self._text(raw, positive, value, True), jtype == "string"), false()
        )
        return not_(hit) if positive != op else hit

    def _text(self, col: Any, op: str, value: Any, nullable: bool) -> ColumnElement[bool]:
        if op == "is_empty":
            return or_(col.is_(None), col == "") if nullable else col == ""
        if op == "is_not_empty":
            return and_(col.is_not(None), col != "") if nullable else col != ""
        # Values are never empty (validated), so "" cannot pass a positive test and needs no
        # guard; a NULL (missing custom value) makes the test NULL, settled below.
        # Emails and statuses are stored lower-case (Python's lower): compare them as they
        # are, so the (workspace, status) index and plain comparisons serve. Everything else
        # is case-folded as Python's str.casefold does, on both databases ("Straße" is
        # "STRASSE"; SQLite's own lower() folds ASCII only).
        norm: Callable[[Any], ColumnElement[str]]
        if col in (Contact.email, Contact.status):
            low, norm = col, lambda v: literal(v.lower(), String)
        else:
            low, norm = fold(col), lambda v: fold(literal(v, String))
        if op in ("in", "not_in"):
            test = low.in_([norm(v) for v in value])
        elif op in ("eq", "neq"):
            test = low == norm(value)
        else:
            escaped = like_escape(value)
            pattern = {
                "contains": f"%{escaped}%",
                "not_contains": f"%{escaped}%",
                "starts_with": f"{escaped}%",
                "ends_with": f"%{escaped}",
            }[op]
            test = low.like(norm(pattern), escape="\\")
        if op in ("neq", "not_contains", "not_in"):
            # Negative operators also match empty values ("city is not X" includes no city).
            return func.coalesce(not_(test), true()) if nullable else not_(test)
        return test

    def _number(self, col: Any, op: str, value: Any) -> ColumnElement[bool]:
        if op == "is_empty":
            return col.is_(None)
        if op == "is_not_empty":
            return col.is_not(None)
        if op == "neq":
            return func.coalesce(col != value, true())
        if op == "between":
            test = col.between(value[0], value[1])
        else:
            test = {
                "eq": col == value,
                "gt": col > value,
                "gte": col >= value,
                "lt": col < value,
                "lte": col <= value,
            }[op]
        return test

    def _date(self, col: Any, op: str, value: Any) -> ColumnElement[bool]:
        """A timestamp column; whole UTC days for dates."""
        if op == "is_empty":
            return col.is_(None)
        if op == "is_not_empty":
            return col.is_not(None)
        if op in ("within_last_days", "not_within_last_days"):
            cutoff = self.now_param - timedelta(days=value)
            within = and_(col >= cutoff, col <= self.now_param)
            if op == "within_last_days":
                return within
            return or_(col < cutoff, col > self.now_param)
        if op == "before":
            return col < self._dt(date.fromisoformat(value))
        if op == "after":
            return col >= self._dt(date.fromisoformat(value) + timedelta(days=1))
        low, high = (date.fromisoformat(v) for v in value)
        return and_(col >= self._dt(low), col < self._dt(high + timedelta(days=1)))

    def _custom_date(self, col: Any, op: str, value: Any) -> ColumnElement[bool]:
        """A custom date field: its YYYY-MM-DD prefix, compared as text."""
        if op == "is_empty":
            return col.is_(None)
        if op == "is_not_empty":
            return col.is_not(None)
        if op in ("within_last_days", "not_within_last_days"):
            cutoff = (self.today - timedelta(days=value)).isoformat()
            today = self.today.isoformat()
            if op == "within_last_days":
                return and_(col >= cutoff, col <= today)
            return or_(col < cutoff, col > today)
        if op == "before":
            return col < value
        if op == "after":
            return col > value
        return col.between(value[0], value[1])

    def _boolean(self, col: Any, op: str) -> ColumnElement[bool]:
        if op == "is_true":
            return col == "true"
        if op == "is_false":
            return col == "false"
        return col.is_(None)

    def activity(self, rule: ActivityRule) -> ColumnElement[bool]:
        types = ACTIVITY_EVENTS[rule.activity]
        # No event.workspace_id test: the contact is already the workspace's, and that test
        # would steer SQLite to the (workspace, type, time) index, a scan per contact.
        conditions = [
            Event.contact_id == Contact.id,
            Event.type == types[0] if len(types) == 1 else Event.type.in_(types),
        ]
        if rule.campaign_id is not None:
            conditions.append(Event.campaign_id == rule.campaign_id)
        if rule.within_days is not None:
            conditions.append(
                Event.occurred_at >= self.now_param - timedelta(days=rule.within_days)
            )
        return self._found(Event.contact_id, conditions, rule.negate)

    def membership(self, rule: ListRule) -> ColumnElement[bool]:
        conditions = [ListMembership.contact_id == Contact.id, ListMembership.list_id == rule.list]
        return self._found(ListMembership.contact_id, conditions, rule.negate)

    def _found(
        self, contact_id: Any, conditions: list[ColumnElement[bool]], negate: bool
    ) -> ColumnElement[bool]:
        """EXISTS (…) or, under an "any" group, `contact.id IN (…)`.

        Under AND, both databases turn either form into a semi- or anti-join. Under OR they
        cannot: an EXISTS there stays a probe per contact, and on PostgreSQL a correlated
        subplan that keeps the whole scan of contact on one core. `IN` is evaluated once:
        SQLite builds an ephemeral index of the ids, PostgreSQL a hashed subplan that is
        parallel safe (bench/segments.py: the "any" and nested trees about twice as fast on
        both). PostgreSQL hashes it only when the planner expects the ids to fit in hash
        memory; otherwise it would rescan the subquery for every contact, so `fits_hash` asks
        the planner first and big sets keep EXISTS. Negated rules keep NOT EXISTS: `NOT IN`
        has no anti-join and its hash would be of the larger, excluded set."""
        correlated, own = conditions[0], conditions[1:]
        if not negate and self.any_depth and self.fits_hash is not None:
            ids = select(contact_id).where(contact_id.is_not(None), *own)
            if self.fits_hash(ids):
                return Contact.id.in_(ids)
        found = exists(select(literal(1)).where(correlated, *own).correlate(Contact))
        return not_(found) if negate else found

    @staticmethod
    def _cost(rule: Any) -> int:
        """A rough per-row price: AND and OR stop at the first decisive term, so cheap
        column tests go first, then index lookups, then JSON, then nested groups."""
        if isinstance(rule, FieldRule):
            return 3 if rule.field.startswith("custom_fields.") else 0
        if isinstance(rule, ListRule):
            return 1
        if isinstance(rule, ActivityRule):
            return 2
        return 4

    def group(self, node: Group) -> ColumnElement[bool]:
        parts: list[ColumnElement[bool]] = []
        alternatives = node.match == "any" and len(node.rules) > 1
        self.any_depth += alternatives
        try:
            for rule in sorted(node.rules, key=self._cost):
                if isinstance(rule, Group):
                    parts.append(self.group(rule))
                elif isinstance(rule, FieldRule):
                    parts.append(self.field(rule))
                elif isinstance(rule, ActivityRule):
                    parts.append(self.activity(rule))
                else:
                    parts.append(self.membership(rule))
        finally:
            self.any_depth -= alternatives
        if not parts:
            return true()
        if len(parts) == 1:
            return parts[0]
        return and_(*parts) if node.match == "all" else or_(*parts)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _hash_fitter(session: Session) -> Callable[[Select[Any]], bool] | None:
    """Whether the database will evaluate a subquery's ids once (see _found). SQLite always
    does. On PostgreSQL this mirrors the planner's own rule (estimated rows times entry size
    within work_mem times hash_mem_multiplier, read from this session), with a 2x margin."""
    if _dialect(session) == "sqlite":
        return lambda ids: True  # SQLite builds an ephemeral index of the ids, any size
    if _dialect(session) != "postgresql":
        return None
    connection = session.connection()
    budget: list[float] = []

    def fits(ids: Select[Any]) -> bool:
        if not budget:
            budget.append(
                connection.exec_driver_sql(
                    "SELECT pg_size_bytes(current_setting('work_mem')) "
                    "* current_setting('hash_mem_multiplier')::float8"
                ).scalar_one()
            )
        # Literal values (ids, event types, a timestamp): an `IN` of several types is an
        # expanding parameter that only a full execution would render.
        compiled = ids.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
        plan = connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}").scalar_one()
        if isinstance(plan, str | bytes):
            plan = json.loads(plan)
        return plan[0]["Plan"]["Plan Rows"] * 64 <= budget[0]

    return fits


def _tune_for_counting(session: Session) -> None:
    """PostgreSQL's JIT compiles these short scans for longer than they run (0.5-1.7 s for a
    query that takes 0.1 s; the planner's cost of per-row subplans sets it off): turn it off
    for the rest of this transaction."""
    if _dialect(session) == "postgresql":
        session.execute(text("SET LOCAL jit = off"))
        # Room for the hashed subplans of activity conditions under "any" groups.
        session.execute(text("SET LOCAL work_mem = '64MB'"))


def compile_rules(
    session: Session, workspace_id: int, rules: Any, at: datetime | None = None
) -> ColumnElement[bool]:
    """The rule tree as one boolean SQL expression over Contact (validated first).

    It does not restrict the workspace itself: callers add `Contact.workspace_id == ws`."""
    scope = load_scope(session, workspace_id)
    group = check_rules(scope, parse_rules(rules))
    compiler = _Compiler(_dialect(session), scope, at or now(), _hash_fitter(session))
    return compiler.group(group)


def matching_query(session: Session, workspace_id: int, rules: Any, at: datetime | None = None):
    """SELECT contact.id of the workspace's contacts that match `rules`."""
    return select(Contact.id).where(
        Contact.workspace_id == workspace_id, compile_rules(session, workspace_id, rules, at)
    )


def segment_condition(session: Session, workspace_id: int, segment_id: int) -> ColumnElement[bool]:
    """A saved segment as a boolean expression over Contact (for audiences).

    Use as `select(Contact.id).where(Contact.workspace_id == ws, segment_condition(...))`."""
    segment = session.get(Segment, segment_id)
    if segment is None or segment.workspace_id != workspace_id:
        raise NotFound("No such segment in this workspace.")
    try:
        return compile_rules(session, workspace_id, segment.rules)
    except InvalidRule as exc:
        raise InvalidRule(f"Segment {segment.name!r} cannot be evaluated: {exc}") from None


# --- Counting and sampling --------------------------------------------------------------


@dataclass(frozen=True)
class CountResult:
    count: int
    seconds: float


def count_matching(
    session: Session, actor: Actor, rules: Any, at: datetime | None = None
) -> CountResult:
    """How many of the workspace's contacts (any status) match, and how long the query took."""
    actor.require("read")
    _tune_for_counting(session)  # first: the compiler reads the session's hash memory
    condition = compile_rules(session, actor.workspace_id, rules, at)
    started = time.perf_counter()
    count = session.scalar(
        select(func.count())
        .select_from(Contact)
        .where(Contact.workspace_id == actor.workspace_id, condition)
    )
    return CountResult(int(count or 0), time.perf_counter() - started)


def sample_matching(
    session: Session, actor: Actor, rules: Any, limit: int = 20, at: datetime | None = None
) -> list[Contact]:
    """The first matching contacts by email, for a preview."""
    actor.require("read")
    _tune_for_counting(session)  # first: the compiler reads the session's hash memory
    condition = compile_rules(session, actor.workspace_id, rules, at)
    return list(
        session.scalars(
            select(Contact)
            .where(Contact.workspace_id == actor.workspace_id, condition)
            .order_by(Contact.email)
            .limit(limit)
        )
    )


def count_segment(session: Session, actor: Actor, segment_id: int) -> CountResult:
    return count_matching(session, actor, get_segment(session, actor, segment_id).rules)


# --- What the builder offers ------------------------------------------------------------


@dataclass(frozen=True)
class BuilderOptions:
    """The fields (with types), lists and campaigns a rule may name, for pickers."""

    fields: list[FieldInfo]
    lists: list[tuple[int, str]]
    campaigns: list[tuple[int, str]]


def builder_options(session: Session, actor: Actor) -> BuilderOptions:
    actor.require("read")
    ws = actor.workspace_id
    lists = session.execute(
        select(ContactList.id, ContactList.name)
        .where(ContactList.workspace_id == ws)
        .order_by(ContactList.name)
    ).all()
    campaigns = session.execute(
        select(Campaign.id, Campaign.name)
        .where(Campaign.workspace_id == ws)
        .order_by(Campaign.created_at.desc(), Campaign.id.desc())
    ).all()
    return BuilderOptions(
        fields=all_fields(session, actor),
        lists=[(i, n) for i, n in lists],
        campaigns=[(i, n) for i, n in campaigns],
    )


# --- CRUD -------------------------------------------------------------------------------


def list_segments(session: Session, actor: Actor) -> list[Segment]:
    """The workspace's segments by name."""
    actor.require("read")
    return list(
        session.scalars(
            select(Segment).where(Segment.workspace_id == actor.workspace_id).order_by(Segment.name)
        )
    )


def get_segment(session: Session, actor: Actor, segment_id: int) -> Segment:
    actor.require("read")
    segment = session.get(Segment, segment_id)
    if segment is None or segment.workspace_id != actor.workspace_id:
        raise NotFound("No such segment in this workspace.")
    return segment


def _clean_name(session: Session, actor: Actor, name: str, exclude_id: int | None = None) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("A segment needs a name.")
    if len(name) > NAME_MAX:
        raise ValidationFailed(f"A segment name has at most {NAME_MAX} characters.")
    query = select(Segment.id).where(
        Segment.workspace_id == actor.workspace_id, Segment.name == name
    )
    if exclude_id is not None:
        query = query.where(Segment.id != exclude_id)
    if session.scalar(query) is not None:
        raise ValidationFailed(f"A segment named {name!r} already exists.")
    return name


def create_segment(session: Session, actor: Actor, name: str, rules: Any) -> Segment:
    actor.require("edit")
    group = validate_rules(session, actor.workspace_id, rules)
    segment = Segment(
        workspace_id=actor.workspace_id,
        name=_clean_name(session, actor, name),
        rules=dump_rules(group),
    )
    session.add(segment)
    session.flush()
    return segment


def update_segment(
    session: Session,
    actor: Actor,
    segment_id: int,
    name: str | None = None,
    rules: Any = None,
) -> Segment:
    actor.require("edit")
    segment = get_segment(session, actor, segment_id)
    if name is not None:
        segment.name = _clean_name(session, actor, name, exclude_id=segment.id)
    if rules is not None:
        segment.rules = dump_rules(validate_rules(session, actor.workspace_id, rules))
    session.flush()
    return segment


def duplicate_segment(session: Session, actor: Actor, segment_id: int) -> Segment:
    actor.require("edit")
    source = get_segment(session, actor, segment_id)
    names = set(
        session.scalars(select(Segment.name).where(Segment.workspace_id == actor.workspace_id))
    )
    name = f"{source.name} (copy)"
    counter = 2
    while name in names:
        name = f"{source.name} (copy {counter})"
        counter += 1
    return create_segment(session, actor, name[:NAME_MAX], source.rules)


def campaigns_using(session: Session, actor: Actor, segment_id: int) -> list[Campaign]:
    """Scheduled, sending or paused campaigns whose audience is this segment."""
    campaigns = session.scalars(
        select(Campaign).where(
            Campaign.workspace_id == actor.workspace_id,
            Campaign.status.in_(CAMPAIGN_STATES_USING_SEGMENT),
        )
    )
    return [c for c in campaigns if (c.audience or {}).get("segment_id") == segment_id]


def delete_segment(session: Session, actor: Actor, segment_id: int) -> None:
    actor.require("edit")
    segment = get_segment(session, actor, segment_id)
    users = campaigns_using(session, actor, segment_id)
    if users:
        names = ", ".join(repr(c.name) for c in users)
        raise SegmentInUse(
            f"Segment {segment.name!r} is the audience of {names} ({users[0].status}); "
            "change or cancel that campaign first."
        )
    session.delete(segment)
    session.flush()


__all__ = [
    "ACTIVITIES",
    "OPERATORS",
    "ActivityRule",
    "BuilderOptions",
    "builder_options",
    "CountResult",
    "FieldRule",
    "Group",
    "InvalidRule",
    "ListRule",
    "SegmentInUse",
    "compile_rules",
    "count_matching",
    "count_segment",
    "create_segment",
    "delete_segment",
    "duplicate_segment",
    "get_segment",
    "list_segments",
    "matching_query",
    "sample_matching",
    "segment_condition",
    "update_segment",
    "validate_rules",
]
