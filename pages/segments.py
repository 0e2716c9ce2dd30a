"""Segments: a visual rule builder with a live count, a preview, and the saved segments."""

from __future__ import annotations

import copy
import json

import streamlit as st

from core import segments
from core.infra.config import settings
from core.infra.errors import MailwrightError
from core.infra.permissions import Actor
from ui import rule_builder
from ui.state import actor as current_actor
from ui.state import db, read_db, shows_errors
from ui.text import md

NEW = "New segment"


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
        rule_builder.load({"match": "all", "rules": []}, None, "")
    else:
        rule_builder.load(saved_rules[picked][1], picked, saved_rules[picked][0])
    st.session_state["seg_loaded"] = picked

tree = st.session_state["seg_tree"]
# The builder takes the page's width (each condition one readable row); the count, the
# sample and saving sit below it.
builder = st.container()
preview, save_box = st.columns([3, 2], gap="large")

with builder:
    rule_builder.draw(tree, options, editable)
    rules = rule_builder.rules(tree)
    waiting = rule_builder.waiting(tree)

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
                    rule_builder.load(
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
            counted = rule_builder.countable(tree)
            result = segments.count_matching(session, actor, counted)
            sample = segments.sample_matching(session, actor, counted, limit=20)
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
        pending = (
            f"; {result.unconfirmed:,} of them unconfirmed signups no campaign mails"
            if result.unconfirmed
            else ""
        )
        st.caption(f"Counted in {result.seconds * 1000:.0f} ms (every status{pending}).")
        if waiting:
            st.caption(
                f"{waiting} new condition{'s' if waiting != 1 else ''} left out of the count "
                "until you fill in a value."
            )
        if sample_rows:
            st.dataframe(sample_rows, hide_index=True, width="stretch")
        else:
            st.caption("No contact matches these rules.")

with save_box:
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
