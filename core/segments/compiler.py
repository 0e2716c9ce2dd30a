"""Compiling a validated rule tree to one SQL condition for SQLite or PostgreSQL, with
Unicode case folding and the plans that keep counts fast at a million contacts."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

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

from core.contacts.fields import CUSTOM_KEY_RE
from core.infra.clock import now
from core.infra.db import fold, like_escape
from core.infra.errors import NotFound
from core.models import (
    Contact,
    Event,
    ListMembership,
    Segment,
)
from core.segments.model import (
    ACTIVITY_EVENTS,
    ActivityRule,
    FieldRule,
    Group,
    InvalidRule,
    ListRule,
    Scope,
    check_rules,
    field_type,
    load_scope,
    parse_rules,
)


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
