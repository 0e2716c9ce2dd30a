"""Automations: the list (status, enrolled, active, last 30 days' sends), a new automation,
and the editor (ui/automation_editor.py) for one."""

import streamlit as st

from core import automations as au
from core.contacts.fields import list_custom_fields
from core.contacts.lists import list_lists
from core.content.templates import list_templates
from core.segments import list_segments
from ui.actions import act
from ui.automation_editor import editor
from ui.format import AUTOMATION_COLOURS, count_column, status_column, when
from ui.state import actor, read_db

me = actor()
BY_HAND = "By hand (test enrollment, the CLI)"
SEGMENT = "enter a segment"
DATE = "reach a date"
SIGNED_UP = "created_at"  # the date a contact was added: the one date every contact has


def new_automation() -> None:
    """Name, trigger and first email: saved as a draft, then opened in the editor. The
    trigger's own inputs (a list, a segment, a date field and offset) follow its kind, so
    the kind is picked outside the form (a form does not rerun until it is submitted)."""
    with read_db() as session:
        lists = [x.name for x in list_lists(session, me)]
        templates = {t.id: t.name for t in list_templates(session, me, sort="name")}
        segments = {x.id: x.name for x in list_segments(session, me)}
        dates = {
            f"custom_fields.{f.key}": f.label
            for f in list_custom_fields(session, me)
            if f.type == "date"
        }
    dates[SIGNED_UP] = "Date added (created)"
    # Choosing the trigger reruns the page: the expander stays open from then on.
    opened = st.session_state.get("au_new_open", False)
    with st.expander("New automation", icon=":material/add:", expanded=opened):
        kind = st.selectbox(
            "Contacts enter when they…",
            [*(f"join the list “{n}”" for n in lists), SEGMENT, DATE, BY_HAND],
            key="au_new_trigger",
            on_change=lambda: st.session_state.update(au_new_open=True),
        )
        with st.form("au_new", border=False):
            name = st.text_input("Name", placeholder="Welcome series")
            trigger: dict = {"type": "manual"}
            if kind == SEGMENT:
                segment = st.selectbox(
                    "Segment",
                    list(segments),
                    format_func=lambda i: segments[i],
                    help="Contacts who newly match it; those in it when it starts do not enter.",
                )
                trigger = {"type": "segment_entered", "segment_id": segment}
            elif kind == DATE:
                field = st.selectbox("Date field", list(dates), format_func=lambda k: dates[k])
                offset = st.number_input(
                    "Days from the date",
                    min_value=-3650,
                    max_value=3650,
                    value=0,
                    step=1,
                    help="-7 = a week before, 0 = on the day, 3 = three days after.",
                )
                yearly = st.checkbox("Every year (birthdays, anniversaries)")
                trigger = {
                    "type": "date_field",
                    "field": field,
                    "offset_days": int(offset),
                    "yearly": yearly,
                }
            else:
                listed = next((n for n in lists if kind == f"join the list “{n}”"), None)
                if listed is not None:
                    trigger = {"type": "list_joined", "list": listed}
            template = st.selectbox(
                "First email", list(templates), format_func=lambda i: templates[i]
            )
            made = st.form_submit_button("Create draft", type="primary")
        if kind == SEGMENT and not segments:
            st.caption("Make a segment first (Segments).")
        if kind == DATE and len(dates) == 1:
            st.caption("Add a custom field of type date (Contacts) for birthdays and renewals.")
        if not templates:
            st.caption("Write a template first (Templates): an automation starts with an email.")
    if made:
        data = {
            "name": name.strip(),
            "trigger": trigger,
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
