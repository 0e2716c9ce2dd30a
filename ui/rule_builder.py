"""The segment rule builder: one row per condition (field, operator, value, remove) and
nested groups, editing a rule tree kept in session state.

The tree is the rule JSON of `core.segments` plus an "_id" per node, so widget keys stay
stable while conditions are added and removed. `load` puts a tree in the session,
`draw` shows it (editable or not) and `rules` gives it back without the ids.

Each condition is one row (kind, its fields, remove) across the builder's width; a group is
a bordered box inside its parent, with its own "all of these / any of these". A condition
added a moment ago is "fresh" until its value is filled in: `countable` leaves it out of the
live count, so the user sees no error before having had a chance to type. Saving still
checks every condition.
"""

from __future__ import annotations

from datetime import date

import streamlit as st

from core import segments
from core.segments import ACTIVITIES, MAX_DEPTH, OPERATOR_LABELS, OPERATORS

ACTIVITY_LABELS = {
    "received": "received",
    "opened": "opened",
    "clicked": "clicked",
    "bounced": "bounced",
    "unsubscribed": "unsubscribed from",
}


def _next_id() -> int:
    """Node ids for widget keys; kept in the session because the page re-runs from the top."""
    st.session_state["seg_next_id"] = st.session_state.get("seg_next_id", 0) + 1
    return st.session_state["seg_next_id"]


# --- The tree in session state: the rule JSON plus an "_id" per node for widget keys ----


def _with_ids(node: dict) -> dict:
    node = {**node, "_id": _next_id()}
    if "rules" in node:
        node["rules"] = [_with_ids(child) for child in node["rules"]]
    return node


def _without_ids(node: dict) -> dict:
    clean = {k: v for k, v in node.items() if k not in ("_id", "_fresh")}
    if "rules" in clean:
        clean["rules"] = [_without_ids(child) for child in clean["rules"]]
    return clean


def _load(rules: dict, segment_id: int | None, name: str) -> None:
    st.session_state["seg_tree"] = _with_ids(rules or {"match": "all", "rules": []})
    st.session_state["seg_id"] = segment_id
    st.session_state["seg_name"] = name


def _new_condition(options: segments.BuilderOptions) -> dict:
    return {"_id": _next_id(), "_fresh": True, "field": "city", "op": "eq", "value": ""}


def _blank(value: object) -> bool:
    return value is None or value == "" or value == []


def _waiting(rule: dict) -> bool:
    """A condition added a moment ago whose value the user has not typed yet."""
    if not rule.get("_fresh"):
        return False
    if (
        "field" in rule
        and rule.get("op") not in segments.NO_VALUE_OPS
        and _blank(rule.get("value"))
    ):
        return True
    rule.pop("_fresh", None)  # filled in (or needs no value): from now on it counts
    return False


# --- Widgets for one condition ----------------------------------------------------------


def _value_widget(rule: dict, type_: str, key: str) -> object:
    op, value = rule["op"], rule.get("value")
    if op in segments.NO_VALUE_OPS:
        return None
    if type_ == "text":
        if op in ("in", "not_in"):
            current = value if isinstance(value, list) else []
            return st.multiselect(
                "Values",
                options=current,
                default=current,
                accept_new_options=True,
                key=key,
                placeholder="Type a value and press Enter",
            )
        return st.text_input("Value", value=value if isinstance(value, str) else "", key=key)
    if type_ == "number":
        if op == "between":
            low, high = value if isinstance(value, list) and len(value) == 2 else (0, 0)
            a, b = st.columns(2)
            return [
                a.number_input("From", value=float(low), key=f"{key}_lo"),
                b.number_input("To", value=float(high), key=f"{key}_hi"),
            ]
        start = float(value) if isinstance(value, int | float) else 0.0
        return st.number_input("Value", value=start, key=key)
    if op in ("within_last_days", "not_within_last_days"):
        days = value if isinstance(value, int) and value > 0 else 30
        return int(st.number_input("Days", min_value=1, value=days, step=1, key=key))
    if op == "between":
        if isinstance(value, list) and len(value) == 2:
            start = (date.fromisoformat(value[0]), date.fromisoformat(value[1]))
        else:
            start = (date.today(), date.today())
        picked = st.date_input("Dates", value=start, key=key)
        if isinstance(picked, tuple | list) and len(picked) == 2:
            return [picked[0].isoformat(), picked[1].isoformat()]
        return value
    day = date.fromisoformat(value) if isinstance(value, str) and value else date.today()
    return st.date_input("Date", value=day, key=key).isoformat()


def _field_condition(rule: dict, options: segments.BuilderOptions, key: str) -> None:
    """Field, operator, value: the rest of the row."""
    types = {f.name: f.type for f in options.fields}
    labels = {f.name: f"{f.label} ({f.type})" for f in options.fields}
    names = list(types)
    if rule.get("field") not in types:
        names.append(rule.get("field"))
        labels[rule.get("field")] = f"{rule.get('field')} (unknown)"
    cols = st.columns([5, 4, 6])
    with cols[0]:
        field = st.selectbox(
            "Field",
            names,
            index=names.index(rule.get("field")),
            format_func=lambda n: labels.get(n, n),
            key=f"{key}_field",
        )
    type_ = types.get(field, "text")
    ops = list(OPERATORS[type_])
    if rule.get("op") not in ops or field != rule.get("field"):
        rule["op"], rule["value"] = ops[0], None
    rule["field"] = field
    with cols[1]:
        rule["op"] = st.selectbox(
            "Operator",
            ops,
            index=ops.index(rule["op"]),
            format_func=lambda o: OPERATOR_LABELS.get(o, o),
            key=f"{key}_op_{field}",
        )
    with cols[2]:
        value = _value_widget(rule, type_, f"{key}_value_{field}_{rule['op']}")
    if value is None:
        rule.pop("value", None)
    else:
        if type_ == "number":
            value = [_number(v) for v in value] if isinstance(value, list) else _number(value)
        rule["value"] = value


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _activity_condition(rule: dict, options: segments.BuilderOptions, key: str) -> None:
    cols = st.columns([3, 4, 5, 3])
    with cols[0]:
        did = st.selectbox(
            "Did", ["did", "did not"], index=int(bool(rule.get("negate"))), key=f"{key}_neg"
        )
        rule["negate"] = did == "did not"
    with cols[1]:
        rule["activity"] = st.selectbox(
            "Activity",
            list(ACTIVITIES),
            index=list(ACTIVITIES).index(rule.get("activity", "opened")),
            format_func=lambda a: ACTIVITY_LABELS[a],
            key=f"{key}_activity",
        )
    campaigns = [None] + [cid for cid, _ in options.campaigns]
    names = dict(options.campaigns)
    current = rule.get("campaign_id")
    if current not in campaigns:
        campaigns.append(current)
    with cols[2]:
        rule["campaign_id"] = st.selectbox(
            "Campaign",
            campaigns,
            index=campaigns.index(current),
            format_func=lambda c: "any campaign" if c is None else names.get(c, f"campaign {c}"),
            key=f"{key}_campaign",
        )
    with cols[3]:
        days = st.number_input(
            "Within (days)",
            help="Only in the last this many days; 0 means ever.",
            min_value=0,
            value=int(rule.get("within_days") or 0),
            step=1,
            key=f"{key}_days",
        )
        rule["within_days"] = int(days) or None


def _list_condition(rule: dict, options: segments.BuilderOptions, key: str) -> None:
    cols = st.columns([4, 11])
    with cols[0]:
        where = st.selectbox(
            "Membership",
            ["is in", "is not in"],
            index=int(bool(rule.get("negate"))),
            key=f"{key}_neg",
        )
        rule["negate"] = where == "is not in"
    ids = [lid for lid, _ in options.lists]
    names = dict(options.lists)
    if rule.get("list") not in ids:
        ids.append(rule.get("list"))
    with cols[1]:
        rule["list"] = st.selectbox(
            "List",
            ids,
            index=ids.index(rule.get("list")),
            format_func=lambda i: names.get(i, "choose a list" if i is None else f"list {i}"),
            key=f"{key}_list",
        )


KINDS = {"Field": "field", "Activity": "activity", "List": "list"}


def _condition(rule: dict, options: segments.BuilderOptions, parent: dict, editable: bool) -> None:
    key = f"seg_{rule['_id']}"
    kind = next((k for k, v in KINDS.items() if v in rule), "Field")
    cols = st.columns([3, 15, 1], vertical_alignment="bottom")
    with cols[0]:
        chosen = st.selectbox(
            "Condition", list(KINDS), index=list(KINDS).index(kind), key=f"{key}_kind"
        )
    if chosen != kind:
        fresh = rule.get("_fresh")
        rule.clear()
        rule["_id"] = int(key.removeprefix("seg_"))
        if chosen == "Field":
            rule.update(field="city", op="eq", value="", _fresh=True)
        elif chosen == "Activity":
            rule.update(activity="opened", campaign_id=None, within_days=None, negate=False)
        else:
            first = options.lists[0][0] if options.lists else None
            rule.update(list=first, negate=False)
        if not fresh:
            rule.pop("_fresh", None)
    with cols[1]:
        {"Field": _field_condition, "Activity": _activity_condition, "List": _list_condition}[
            chosen
        ](rule, options, key)
    with cols[2]:
        if editable and st.button(
            "",
            icon=":material/close:",
            key=f"{key}_remove",
            help="Remove this condition",
            width="stretch",
        ):
            parent["rules"].remove(rule)
            st.rerun()


def _group(
    node: dict, options: segments.BuilderOptions, depth: int, parent: dict | None, editable: bool
) -> None:
    key = f"seg_{node['_id']}"
    with st.container(border=True):
        top = st.columns([3, 4, 6, 4], vertical_alignment="center")
        top[0].markdown("**Contacts matching**" if parent is None else "**A group matching**")
        with top[1]:
            node["match"] = st.selectbox(
                "Contacts matching",
                ["all", "any"],
                index=["all", "any"].index(node.get("match", "all")),
                format_func=lambda m: f"{m} of these",
                key=f"{key}_match",
                label_visibility="collapsed",
            )
        with top[3]:
            if (
                parent is not None
                and editable
                and st.button(
                    "Remove group", icon=":material/delete:", key=f"{key}_remove", width="stretch"
                )
            ):
                parent["rules"].remove(node)
                st.rerun()
        if not node["rules"]:
            st.caption("No conditions: every contact matches.")
        for child in list(node["rules"]):
            if "rules" in child or "match" in child:
                _group(child, options, depth + 1, node, editable)
            else:
                _condition(child, options, node, editable)
        if editable:
            buttons = st.columns([1, 1, 2])
            if buttons[0].button(
                "Add condition", icon=":material/add:", key=f"{key}_add", width="stretch"
            ):
                node["rules"].append(_new_condition(options))
                st.rerun()
            if depth < MAX_DEPTH and buttons[1].button(
                "Add group", icon=":material/account_tree:", key=f"{key}_addgroup", width="stretch"
            ):
                node["rules"].append(
                    {"_id": _next_id(), "match": "any", "rules": [_new_condition(options)]}
                )
                st.rerun()


def load(rules: dict, segment_id: int | None, name: str) -> None:
    """Put `rules` (a saved segment's, or an empty tree) in the session for editing."""
    _load(rules, segment_id, name)


def draw(tree: dict, options: segments.BuilderOptions, editable: bool) -> None:
    """The builder for `tree` (changed in place as the user edits)."""
    _group(tree, options, 1, None, editable)


def rules(tree: dict) -> dict:
    """The rule tree as core.segments takes it."""
    return _without_ids(tree)


def waiting(tree: dict) -> int:
    """How many freshly added conditions still wait for a value."""
    return sum(
        waiting(child) if "rules" in child else int(_waiting(child)) for child in tree["rules"]
    )


def countable(tree: dict) -> dict:
    """The rule tree for the live count: like `rules`, without conditions still waiting
    for their first value (and without groups left empty by that)."""

    def prune(node: dict) -> dict:
        kept = []
        for child in node["rules"]:
            if "rules" in child:
                inner = prune(child)
                if inner["rules"] or not child["rules"]:
                    kept.append(inner)
            elif not _waiting(child):
                kept.append(_without_ids(child))
        return {**{k: v for k, v in node.items() if k not in ("_id", "rules")}, "rules": kept}

    return prune(tree)
