"""Templates: the library, the editor (visual or HTML source), preview, test send and the
AI writing assistant."""

from __future__ import annotations

import streamlit as st

from core.content.templates import (
    delete_template,
    duplicate_template,
    list_templates,
)
from ui.actions import act
from ui.format import when
from ui.state import actor, read_db, shows_errors
from ui.template_editor import editor, open_editor
from ui.text import md

SORT_LABELS = {"updated": "Last updated", "name": "Name", "created": "Newest"}

me = actor()
state = st.session_state


# ---------------------------------------------------------------- library
def library() -> None:
    st.title("Templates")
    top = st.columns([3, 2, 1.2], vertical_alignment="bottom")
    search = top[0].text_input("Search templates", placeholder="name or subject")
    sort = top[1].selectbox("Sort by", list(SORT_LABELS), format_func=SORT_LABELS.get)
    if top[2].button("New template", type="primary", disabled=not me.can("edit")):
        open_editor(None)
        st.rerun()
    rows = []
    with shows_errors(), read_db() as session:
        rows = [
            (t.id, t.name, t.subject, t.updated_at)
            for t in list_templates(session, me, search, sort)
        ]
    if not rows:
        st.info("No templates yet." if not search else "No template matches your search.")
        return
    pending = state.get("tpl_confirm_delete")
    for template_id, name, subject, updated in rows:
        with st.container(border=True):
            cols = st.columns([4, 1, 1, 1], vertical_alignment="center")
            cols[0].markdown(f"**{md(name)}**  \n{md(subject) if subject else '—'}")
            cols[0].caption(f"Updated {when(updated)}")
            if cols[1].button("Edit", key=f"edit_{template_id}"):
                open_editor(template_id)
                st.rerun()
            if cols[2].button("Duplicate", key=f"dup_{template_id}", disabled=not me.can("edit")):
                act(
                    lambda s, tid=template_id: duplicate_template(s, me, tid),
                    lambda copy: f"Created “{copy.name}”.",
                )
            if cols[3].button("Delete", key=f"del_{template_id}", disabled=not me.can("edit")):
                state.tpl_confirm_delete = template_id
                st.rerun()
            if pending == template_id:
                st.warning(f"Delete “{md(name)}”? This cannot be undone.")
                yes, no = st.columns(2)
                if yes.button("Yes, delete", key=f"yes_{template_id}", type="primary"):
                    state.tpl_confirm_delete = None
                    act(
                        lambda s, tid=template_id: delete_template(s, me, tid), f"Deleted “{name}”."
                    )
                if no.button("Keep it", key=f"no_{template_id}"):
                    state.tpl_confirm_delete = None
                    st.rerun()


if state.get("tpl_open"):
    editor()
else:
    library()
