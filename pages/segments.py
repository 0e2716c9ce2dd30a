"""Segments: a visual rule builder with a live count, a preview, and the saved segments."""

from __future__ import annotations

import copy
import json
from datetime import date

import streamlit as st

from core import segments
from core.config import settings
from core.errors import MailwrightError
from core.permissions import Actor
from core.segments import ACTIVITIES, MAX_DEPTH, OPERATOR_LABELS, OPERATORS
from ui.state import actor as current_actor
from ui.state import db, read_db, shows_errors
from ui.text import md

NEW = "➕ New segment"
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
    clean = {k: v for k, v in node.items() if k != "_id"}
    if "rules" in clean:
        clean["rules"] = [_without_ids(child) for child in clean["rules"]]
    return clean


def _load(rules: dict, segment_id: int | None, name: str) -> None:
    st.session_state["seg_tree"] = _with_ids(rules or {"match": "all", "rules": []})
    st.session_state["seg_id"] = segment_id
    st.session_state["seg_name"] = name


def _new_condition(options: segments.BuilderOptions) -> dict:
    return {"_id": _next_id(), "field": "city", "op": "eq", "value": ""}


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
    types = {f.name: f.type for f in options.fields}
    labels = {f.name: f"{f.label} ({f.type})" for f in options.fields}
    names = list(types)
    if rule.get("field") not in types:
        names.append(rule.get("field"))
        labels[rule.get("field")] = f"{rule.get('field')} (unknown)"
    cols = st.columns([3, 3, 4])
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
    cols = st.columns([2, 3, 4, 2])
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
            "Within days (0 = ever)",
            min_value=0,
            value=int(rule.get("within_days") or 0),
            step=1,
            key=f"{key}_days",
        )
        rule["within_days"] = int(days) or None


def _list_condition(rule: dict, options: segments.BuilderOptions, key: str) -> None:
    cols = st.columns([2, 6])
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
    cols = st.columns([2, 12, 1], vertical_alignment="bottom")
    with cols[0]:
        chosen = st.selectbox(
            "Condition", list(KINDS), index=list(KINDS).index(kind), key=f"{key}_kind"
        )
    if chosen != kind:
        rule.clear()
        rule["_id"] = int(key.removeprefix("seg_"))
        if chosen == "Field":
            rule.update(field="city", op="eq", value="")
        elif chosen == "Activity":
            rule.update(activity="opened", campaign_id=None, within_days=None, negate=False)
        else:
            first = options.lists[0][0] if options.lists else None
            rule.update(list=first, negate=False)
    with cols[1]:
        {"Field": _field_condition, "Activity": _activity_condition, "List": _list_condition}[
            chosen
        ](rule, options, key)
    with cols[2]:
        if editable and st.button("✕", key=f"{key}_remove", help="Remove this condition"):
            parent["rules"].remove(rule)
            st.rerun()


def _group(
    node: dict, options: segments.BuilderOptions, depth: int, parent: dict | None, editable: bool
) -> None:
    key = f"seg_{node['_id']}"
    with st.container(border=True):
        top = st.columns([3, 9, 2], vertical_alignment="bottom")
        with top[0]:
            node["match"] = st.selectbox(
                "Contacts matching",
                ["all", "any"],
                index=["all", "any"].index(node.get("match", "all")),
                format_func=lambda m: f"{m} of these",
                key=f"{key}_match",
            )
        with top[2]:
            if parent is not None and editable and st.button("Remove group", key=f"{key}_remove"):
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
            buttons = st.columns([2, 2, 8])
            if buttons[0].button("Add condition", key=f"{key}_add"):
                node["rules"].append(_new_condition(options))
                st.rerun()
            if depth < MAX_DEPTH and buttons[1].button("Add group", key=f"{key}_addgroup"):
                node["rules"].append(
                    {"_id": _next_id(), "match": "any", "rules": [_new_condition(options)]}
                )
                st.rerun()


# --- Saved segments and their counts ------------------------------------------------------


@st.cache_data(ttl=60, show_spinner=False)
def _saved_count(url: str, workspace_id: int, segment_id: int, version: str) -> str:
    """A saved segment's count, cached for a minute per version (its updated_at)."""
    del url, version  # cache keys
    reader = Actor(workspace_id=workspace_id, role="viewer")
    try:
        with read_db() as session:
            return f"{segments.count_segment(session, reader, segment_id).count:,}"
    except MailwrightError as exc:
        return f"error: {exc}"


def _segment_table(saved: list) -> None:
    actor = current_actor()
    rows = [
        {
            "Segment": s.name,
            "Contacts": _saved_count(
                settings.database_url, actor.workspace_id, s.id, str(s.updated_at)
            ),
            "Updated": s.updated_at,
        }
        for s in saved
    ]
    st.dataframe(rows, hide_index=True, width="stretch")


# --- The page -----------------------------------------------------------------------------

actor = current_actor()
editable = actor.can("edit")
st.title("Segments")

with read_db() as session:
    options = segments.builder_options(session, actor)
    saved = segments.list_segments(session, actor)
    saved_rules = {s.id: (s.name, copy.deepcopy(s.rules)) for s in saved}

choices = [None] + [s.id for s in saved]
names = {s.id: s.name for s in saved}
if st.session_state.get("seg_id") not in choices:
    st.session_state["seg_id"] = None
picked = st.selectbox(
    "Segment",
    choices,
    index=choices.index(st.session_state.get("seg_id")),
    format_func=lambda i: NEW if i is None else names[i],
)
if "seg_tree" not in st.session_state or picked != st.session_state.get("seg_loaded"):
    if picked is None:
        _load({"match": "all", "rules": []}, None, "")
    else:
        _load(saved_rules[picked][1], picked, saved_rules[picked][0])
    st.session_state["seg_loaded"] = picked

tree = st.session_state["seg_tree"]
builder, preview = st.columns([3, 2])

with builder:
    _group(tree, options, 1, None, editable)
    rules = _without_ids(tree)

    with st.expander("Rules as JSON"):
        st.caption(
            "For power users: edit and apply; the rules are checked before they replace the builder's."
        )
        edited = st.text_area(
            "Rules JSON",
            value=json.dumps(rules, indent=2),
            height=240,
            key=f"seg_json_{tree['_id']}_{hash(json.dumps(rules, sort_keys=True))}",
        )
        if st.button("Apply JSON", key="seg_apply_json"):
            try:
                parsed = json.loads(edited)
            except json.JSONDecodeError as exc:
                st.error(f"That is not valid JSON: {md(exc.msg)} (line {exc.lineno}).")
            else:
                checked = None
                with shows_errors(), db() as session:
                    checked = segments.validate_rules(session, actor.workspace_id, parsed)
                if checked is not None:
                    _load(
                        segments.dump_rules(checked),
                        st.session_state.get("seg_id"),
                        st.session_state.get("seg_name", ""),
                    )
                    st.session_state["seg_loaded"] = picked
                    st.rerun()

with preview:
    valid = False
    try:
        with read_db() as session:
            result = segments.count_matching(session, actor, rules)
            sample = segments.sample_matching(session, actor, rules, limit=20)
            sample_rows = [
                {
                    "Email": c.email,
                    "Name": f"{c.first_name} {c.last_name}".strip(),
                    "City": c.city,
                    "Status": c.status,
                }
                for c in sample
            ]
        valid = True
    except MailwrightError as exc:
        st.warning(str(exc))
    if valid:
        st.metric("Matching contacts", f"{result.count:,}")
        st.caption(f"Counted in {result.seconds * 1000:.0f} ms (every status).")
        if sample_rows:
            st.dataframe(sample_rows, hide_index=True, width="stretch")
        else:
            st.caption("No contact matches these rules.")

    st.subheader("Save")
    name = st.text_input(
        "Segment name", value=st.session_state.get("seg_name", ""), key=f"seg_name_{picked}"
    )
    segment_id = st.session_state.get("seg_id")
    save, duplicate, delete = st.columns(3)
    done = None  # st.rerun() must come after the transaction commits, not inside it
    if save.button("Save", type="primary", disabled=not editable, key="seg_save"):
        with shows_errors(), db() as session:
            if segment_id is None:
                segment = segments.create_segment(session, actor, name, rules)
            else:
                segment = segments.update_segment(
                    session, actor, segment_id, name=name, rules=rules
                )
            done = {"seg_id": segment.id, "seg_loaded": segment.id, "seg_name": segment.name}
            done["seg_notice"] = f"Saved segment {segment.name!r}."
    if segment_id is not None:
        if duplicate.button("Duplicate", disabled=not editable, key="seg_duplicate"):
            with shows_errors(), db() as session:
                copy_ = segments.duplicate_segment(session, actor, segment_id)
                done = {
                    "seg_id": copy_.id,
                    "seg_loaded": None,
                    "seg_notice": f"Created {copy_.name!r}.",
                }
        if delete.button("Delete", disabled=not editable, key="seg_delete"):
            with shows_errors(), db() as session:
                segments.delete_segment(session, actor, segment_id)
                done = {"seg_id": None, "seg_loaded": "deleted", "seg_notice": "Segment deleted."}
    if done:
        st.session_state.update(done)
        st.rerun()
    notice = st.session_state.pop("seg_notice", None)
    if notice:
        st.success(notice)

st.subheader("All segments")
if saved:
    _segment_table(saved)
else:
    st.caption("No saved segments yet.")
