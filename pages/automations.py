"""Automations: the list (status, enrolled, active, last 30 days' sends), a new automation,
and the editor (ui/automation_editor.py) for one."""

import streamlit as st

from core import automations as au
from core.contacts.lists import list_lists
from core.content.templates import list_templates
from ui.actions import act
from ui.automation_editor import editor
from ui.format import AUTOMATION_COLOURS, count_column, status_column, when
from ui.state import actor, read_db

me = actor()
BY_HAND = "By hand (test enrollment, the CLI)"


def new_automation() -> None:
    """Name, trigger and first email: saved as a draft, then opened in the editor."""
    with read_db() as session:
        lists = [x.name for x in list_lists(session, me)]
        templates = {t.id: t.name for t in list_templates(session, me, sort="name")}
    with st.expander("New automation", icon=":material/add:", expanded=False):
        with st.form("au_new", border=False):
            name = st.text_input("Name", placeholder="Welcome series")
            trigger = st.selectbox(
                "Contacts enter when they…",
                [*(f"join the list “{n}”" for n in lists), BY_HAND],
            )
            template = st.selectbox(
                "First email", list(templates), format_func=lambda i: templates[i]
            )
            made = st.form_submit_button("Create draft", type="primary")
        if not templates:
            st.caption("Write a template first (Templates): an automation starts with an email.")
    if made:
        list_name = next((n for n in lists if trigger == f"join the list “{n}”"), None)
        data = {
            "name": name.strip(),
            "trigger": {"type": "list_joined", "list": list_name}
            if list_name
            else {"type": "manual"},
            "steps": [{"send": {"template_id": template}}],
        }
        created = act(lambda s: au.create_automation(s, me, data, activate=False).id, rerun=False)
        if created is not None:
            st.session_state["au_open"] = created
            st.rerun()


def automation_list() -> None:
    st.title("Automations")
    st.caption(
        "Welcome series and drips: contacts enter on a trigger and walk through the steps, "
        "each email sent once."
    )
    if me.can("edit"):
        new_automation()
    with read_db() as session:
        rows = au.list_automations(session, me)
    if not rows:
        st.info("No automation yet.")
        return
    st.dataframe(
        [
            {
                "Name": r.name,
                "Status": [r.status],
                "Trigger": r.trigger,
                "Steps": r.steps,
                "Enrolled": r.enrolled,
                "In it now": r.active,
                "Sent (30 days)": r.sent_30_days,
                "Changed": when(r.updated_at),
            }
            for r in rows
        ],
        column_config={
            "Status": status_column(colours=AUTOMATION_COLOURS),
            "Enrolled": count_column("Enrolled", help="Contacts who entered, ever."),
            "In it now": count_column("In it now", help="Contacts waiting or due at a step."),
            "Sent (30 days)": count_column("Sent (30 days)"),
        },
        hide_index=True,
        width="stretch",
    )
    by_id = {r.id: r for r in rows}
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    chosen = left.selectbox(
        "Automation", list(by_id), format_func=lambda i: f"{by_id[i].name} ({by_id[i].status})"
    )
    if right.button("Open automation", type="primary", key="au_open_btn"):
        st.session_state["au_open"] = chosen
        st.rerun()


opened = st.session_state.get("au_open")
if opened is None:
    automation_list()
else:
    editor(me, opened)
