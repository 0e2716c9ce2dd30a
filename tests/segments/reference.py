"""A plain-Python evaluator of segment rules: the meaning the compiled SQL must match."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from core.segments import ACTIVITY_EVENTS, STANDARD_TYPES


@dataclass
class World:
    """Contacts (dicts of their columns), events and memberships of one workspace."""

    workspace_id: int
    now: datetime
    custom_types: dict[str, str]
    contacts: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    memberships: set[tuple[int, int]] = field(default_factory=set)  # (list_id, contact_id)

    def matching(self, rules: dict) -> set[int]:
        return {c["id"] for c in self.contacts if self.matches(rules, c)}

    def matches(self, node: dict, contact: dict) -> bool:
        if "rules" in node or "match" in node:
            results = [self.matches(rule, contact) for rule in node.get("rules", [])]
            if not results:
                return True
            return all(results) if node.get("match", "all") == "all" else any(results)
        if "field" in node:
            return self._field(node, contact)
        if "activity" in node:
            found = any(
                e["contact_id"] == contact["id"]
                and e["workspace_id"] == self.workspace_id
                and e["type"] in ACTIVITY_EVENTS[node["activity"]]
                and (node.get("campaign_id") is None or e["campaign_id"] == node["campaign_id"])
                and (
                    node.get("within_days") is None
                    or e["occurred_at"] >= self.now - timedelta(days=node["within_days"])
                )
                for e in self.events
            )
            return found != bool(node.get("negate"))
        found = (node["list"], contact["id"]) in self.memberships
        return found != bool(node.get("negate"))

    def _value(self, name: str, contact: dict) -> tuple[str, Any]:
        if name in STANDARD_TYPES:
            return STANDARD_TYPES[name], contact[name]
        key = name.removeprefix("custom_fields.")
        type_ = self.custom_types[key]
        raw = (contact.get("custom_fields") or {}).get(key)
        if type_ == "text":
            return type_, raw if isinstance(raw, str) else None
        if type_ == "number":
            ok = isinstance(raw, int | float) and not isinstance(raw, bool)
            return type_, float(raw) if ok else None
        if type_ == "boolean":
            return type_, ("true" if raw else "false") if isinstance(raw, bool) else None
        ok = isinstance(raw, str) and len(raw) >= 10 and raw[4] == "-" and raw[7] == "-"
        return "custom_date", raw[:10] if ok else None

    def _field(self, rule: dict, contact: dict) -> bool:
        type_, x = self._value(rule["field"], contact)
        op, v = rule["op"], rule.get("value")
        if op == "is_empty":
            return x is None or x == ""
        if op == "is_not_empty":
            return not (x is None or x == "")
        if type_ == "text":
            # Addresses and statuses are stored lower-cased and compared so; the rest folds.
            fold = str.lower if rule["field"] in ("email", "status") else str.casefold
            empty = x is None or x == ""
            low = None if empty else fold(x)
            if op in ("in", "not_in"):
                hit = not empty and low in {fold(w.strip()) for w in v}
            else:
                w = fold(v.strip())
                hit = (
                    not empty
                    and {
                        "eq": low == w,
                        "neq": low == w,
                        "contains": w in (low or ""),
                        "not_contains": w in (low or ""),
                        "starts_with": (low or "").startswith(w),
                        "ends_with": (low or "").endswith(w),
                    }[op]
                )
            return (empty or not hit) if op in ("neq", "not_contains", "not_in") else hit
        if type_ == "number":
            if op == "neq":
                return x is None or x != v
            if x is None:
                return False
            if op == "between":
                return v[0] <= x <= v[1]
            return {"eq": x == v, "gt": x > v, "gte": x >= v, "lt": x < v, "lte": x <= v}[op]
        if type_ == "boolean":
            return x == ("true" if op == "is_true" else "false")
        if x is None:
            return False
        if type_ == "custom_date":
            today = self.now.date()
            if op == "within_last_days":
                return (today - timedelta(days=v)).isoformat() <= x <= today.isoformat()
            if op == "not_within_last_days":
                return not (today - timedelta(days=v)).isoformat() <= x <= today.isoformat()
            if op == "before":
                return x < v
            if op == "after":
                return x > v
            return v[0] <= x <= v[1]
        x = x if x.tzinfo else x.replace(tzinfo=UTC)
        if op == "within_last_days":
            return self.now - timedelta(days=v) <= x <= self.now
        if op == "not_within_last_days":
            return not self.now - timedelta(days=v) <= x <= self.now
        day = _midnight
        if op == "before":
            return x < day(v)
        if op == "after":
            return x >= day(v) + timedelta(days=1)
        return day(v[0]) <= x < day(v[1]) + timedelta(days=1)


def _midnight(value: str) -> datetime:
    d = date.fromisoformat(value)
    return datetime(d.year, d.month, d.day, tzinfo=UTC)
