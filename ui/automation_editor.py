"""The automation editor: the flow top to bottom as cards (the trigger, then each step; a
branch's then and else side by side) with each step's live figures, a form per step, and
the controls around it (activate, pause, resume, test enrollment, the JSON view)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import streamlit as st

from core import automations as au
from core.infra.permissions import Actor
from ui.actions import act, arm, ask_first
from ui.format import AUTOMATION_COLOURS
from ui.state import read_db, shows_errors
from ui.text import md

ICONS = {
    "send": ":material/mail:",
    "wait": ":material/schedule:",
    "branch": ":material/call_split:",
    "update": ":material/edit_note:",
    "exit": ":material/logout:",
}
KINDS = {
    "send": "Send an email",
    "wait": "Wait",
    "branch": "Branch on what they did",
    "update": "Update the contact",
    "exit": "Exit",
}
UNITS = ("minutes", "hours", "days")
CONDITIONS = {
    "opened": "Opened the previous email",
    "clicked": "Clicked in the previous email",
    "segment": "Is in a segment",
    "keep": "Keep the current condition (set in the JSON view)",
}
UPDATES = {
    "add_list": "Add to a list",
    "remove_list": "Remove from a list",
    "set_field": "Set a field",
}


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


@dataclass
class Ctx:
    me: Actor
    automation_id: int
    editable: bool  # the role may edit
    free: bool  # nobody has entered: steps may be added
    options: au.report.EditorOptions
    figures: dict[str, au.StepFigures]


# --- forms ---------------------------------------------------------------------------------


def step_form(kind: str, current: dict[str, Any] | None, ctx: Ctx, key: str) -> dict | None:
    """The form for one step of `kind` (filled from `current`); the step on "Save step"."""
    spec = (current or {}).get(kind) or {}
    step: dict[str, Any] | None = None
    with st.form(key, border=False):
        if kind == "send":
            ids = list(ctx.options.templates)
            if not ids:
                st.warning("Write a template first (Templates).")
            chosen = spec.get("template_id")
            template = st.selectbox(
                "Template",
                ids,
                index=ids.index(chosen) if chosen in ids else 0,
                format_func=lambda i: ctx.options.templates[i],
            )
            subject = st.text_input(
                "Subject (empty: the template's)", value=spec.get("subject") or ""
            )
            sender = st.text_input(
                "Sender name (empty: the workspace's)", value=spec.get("from_name") or ""
            )
            step = {"send": {"template_id": template}}
            if subject.strip():
                step["send"]["subject"] = subject.strip()
            if sender.strip():
                step["send"]["from_name"] = sender.strip()
        elif kind == "wait":
            unit = next((u for u in UNITS if spec.get(u) is not None), "days")
            left, right = st.columns(2)
            amount = left.number_input("Wait for", min_value=0, value=int(spec.get(unit, 1) or 0))
            unit = right.selectbox("Unit", UNITS, index=UNITS.index(unit))
            until = (current or {}).get("until_time") or spec.get("until_time") or ""
            until = st.text_input("Then until the time (HH:MM, optional)", value=until)
            step = {"wait": {unit: int(amount)}}
            if until.strip():
                step["until_time"] = until.strip()
        elif kind == "branch":
            condition = spec.get("if") or {"opened": "previous"}
            kinds = list(CONDITIONS)
            now = (
                "opened"
                if condition.get("opened") == "previous"
                else "clicked"
                if condition.get("clicked") == "previous"
                else "segment"
                if "segment_id" in condition and len(condition) == 1
                else "keep"
            )
            if now != "keep":
                kinds.remove("keep")
            chosen_kind = st.radio(
                "If the contact…", kinds, index=kinds.index(now), format_func=CONDITIONS.get
            )
            url = st.text_input(
                "…clicked a link containing (optional)", value=condition.get("url_contains") or ""
            )
            segments = list(ctx.options.segments)
            segment = st.selectbox(
                "…is in the segment",
                segments,
                index=segments.index(condition["segment_id"])
                if condition.get("segment_id") in segments
                else 0,
                format_func=lambda i: ctx.options.segments[i],
            )
            new_if: dict[str, Any] = condition
            if chosen_kind == "opened":
                new_if = {"opened": "previous"}
            elif chosen_kind == "clicked":
                new_if = {"clicked": "previous"} | ({"url_contains": url} if url.strip() else {})
            elif chosen_kind == "segment":
                new_if = {"segment_id": segment}
            step = {"branch": {"if": new_if}}
            if current is None:
                step["branch"] |= {"then": [], "else": []}
        elif kind == "update":
            actions = list(UPDATES)
            now = next((a for a in actions if spec.get(a)), "add_list")
            action = st.radio("Change", actions, index=actions.index(now), format_func=UPDATES.get)
            lists = ctx.options.lists
            name = spec.get("add_list") or spec.get("remove_list")
            chosen_list = st.selectbox(
                "List", lists, index=lists.index(name) if name in lists else 0
            )
            fields = ctx.options.fields
            field = st.selectbox(
                "Field",
                fields,
                index=fields.index(spec["set_field"]) if spec.get("set_field") in fields else 0,
            )
            value = st.text_input("Value", value=str(spec.get("value") or ""))
            if action == "set_field":
                step = {"update": {"set_field": field, "value": value}}
            else:
                step = {"update": {action: chosen_list}}
        else:
            st.caption("The contact leaves the automation here.")
            step = {"exit": {}}
        save, cancel = st.columns([1, 4])
        saved = save.form_submit_button("Save step", type="primary")
        cancelled = cancel.form_submit_button("Cancel")
    if cancelled:
        st.session_state.pop("au_edit", None)
        st.session_state.pop("au_add", None)
        st.rerun()
    return step if saved else None


# --- cards ---------------------------------------------------------------------------------


def trigger_card(definition: dict[str, Any], status: dict[str, int], names: dict[str, str]) -> None:
    when = au.describe_trigger(definition.get("trigger") or {}, names)
    with st.container(border=True):
        st.markdown(f":material/bolt: **When** {md(when)}")
        st.caption(
            f"Enrolled {status['enrolled']:,} · in it now {status['active']:,} · finished "
            f"{status['finished']:,} · left early {status['exited']:,}"
        )


def _figures_line(fig: au.StepFigures | None) -> str:
    if fig is None:
        return ""
    parts = [f"Waiting {fig.waiting:,}"] if fig.kind in ("send", "wait", "branch") else []
    if fig.kind == "send":
        rates = fig.rates
        parts += [
            f"Sent {fig.sent:,}",
            f"Open rate {pct(rates['open_rate'])}",
            f"Click rate {pct(rates['click_rate'])}",
        ]
        if fig.failed:
            parts.append(f"Failed {fig.failed:,}")
    return " · ".join(parts)


def step_card(path: str, step: dict[str, Any], ctx: Ctx) -> None:
    kind = next(iter(step))
    fig = ctx.figures.get(path)
    with st.container(border=True, key=f"au_card_{path.replace('.', '_')}"):
        summary = fig.summary if fig else kind
        st.markdown(f"{ICONS[kind]} **{md(au.human_path(path))}** · {md(summary)}")
        line = _figures_line(fig)
        if line:
            st.caption(line)
        if ctx.editable:
            with st.container(horizontal=True):
                if st.button("Edit", key=f"au_edit_{path}", icon=":material/edit:"):
                    st.session_state["au_edit"] = path
                    st.session_state.pop("au_add", None)
                    st.rerun()
                if st.button("Remove", key=f"au_remove_{path}", icon=":material/delete:"):
                    arm(f"au_confirm_remove_{ctx.automation_id}_{path}")
        if ask_first(
            f"au_confirm_remove_{ctx.automation_id}_{path}",
            f"Remove step {au.human_path(path)}? Contacts on it move to the next step.",
            "Yes, remove it",
        ):
            act(
                lambda s: au.remove_step(s, ctx.me, ctx.automation_id, path),
                f"Removed step {au.human_path(path)}.",
            )
        if st.session_state.get("au_edit") == path:
            new = step_form(kind, step, ctx, key=f"au_form_{path}")
            if new is not None:
                st.session_state.pop("au_edit", None)
                act(
                    lambda s: au.save_step(s, ctx.me, ctx.automation_id, path, new),
                    f"Saved step {au.human_path(path)}.",
                )


def flow(steps: list[dict[str, Any]], prefix: str, ctx: Ctx) -> None:
    """The cards of one list of steps, a branch's arms side by side, and "Add a step"."""
    for index, step in enumerate(steps):
        path = f"{prefix}{index}"
        step_card(path, step, ctx)
        if "branch" in step:
            then, other = st.columns(2, gap="medium")
            for column, arm_name, label in ((then, "then", "Then"), (other, "else", "Else")):
                with column:
                    st.markdown(f"**{label}**")
                    arm_steps = step["branch"].get(arm_name) or []
                    if not arm_steps:
                        st.caption("Nothing: on to the step after the branch.")
                    flow(arm_steps, f"{path}.{arm_name}.", ctx)
    if ctx.editable and ctx.free:
        add_step(prefix, len(steps), ctx)


def add_step(prefix: str, index: int, ctx: Ctx) -> None:
    tag = prefix.replace(".", "_") or "top"
    if st.session_state.get("au_add") != prefix:
        if st.button("Add a step", key=f"au_add_{tag}", icon=":material/add:"):
            st.session_state["au_add"] = prefix
            st.session_state.pop("au_edit", None)
            st.rerun()
        return
    with st.container(border=True):
        kind = st.selectbox(
            "Kind of step", list(KINDS), format_func=KINDS.get, key=f"au_kind_{tag}"
        )
        new = step_form(kind, None, ctx, key=f"au_new_{tag}")
    if new is not None:
        st.session_state.pop("au_add", None)
        act(
            lambda s: au.add_step(s, ctx.me, ctx.automation_id, prefix, index, new),
            "Added a step.",
        )


# --- the editor ----------------------------------------------------------------------------


def controls(me: Actor, automation: Any) -> None:
    """Status, activate / pause / resume (asked first), duplicate, report."""
    aid, name, status = automation.id, automation.name, automation.status
    st.badge(status, color=AUTOMATION_COLOURS.get(status, "gray"))
    can = me.can("edit")
    buttons = st.container(horizontal=True)
    verb = {"draft": "Activate", "active": "Pause", "paused": "Resume"}[status]
    if buttons.button(verb, type="primary", disabled=not can, key="au_status_btn"):
        arm(f"au_confirm_{verb}_{aid}")
    questions = {
        "Activate": f"Activate “{name}”? Contacts who meet its trigger from now on enter it.",
        "Pause": f"Pause “{name}”? Nothing is sent and every wait is held until you resume.",
        "Resume": f"Resume “{name}”? Waits continue where they were held.",
    }
    work = {
        "Activate": au.activate_automation,
        "Pause": au.pause_automation,
        "Resume": au.resume_automation,
    }[verb]
    if ask_first(f"au_confirm_{verb}_{aid}", questions[verb], f"Yes, {verb.lower()}"):
        act(lambda s: work(s, me, aid), f"{verb.rstrip('e')}ed “{name}”.")
    if buttons.button("Duplicate as draft", disabled=not can, key="au_duplicate"):
        copy_ = act(lambda s: au.duplicate_as_draft(s, me, aid).id, rerun=False)
        if copy_ is not None:
            st.session_state["au_open"] = copy_
            st.rerun()
    if buttons.button("Report", key="au_report", disabled=status == "draft"):
        st.session_state["report_automation"] = aid
        st.switch_page("pages/reports.py")


def test_enrollment(me: Actor, automation_id: int, status: str) -> None:
    with st.form("au_test", clear_on_submit=False, border=False):
        left, right = st.columns([3, 1], vertical_alignment="bottom")
        email = left.text_input("Test with one contact (email)", placeholder="ann@example.com")
        sent = right.form_submit_button(
            "Enroll now", disabled=not me.can("edit") or status == "draft"
        )
    if status == "draft":
        st.caption("Activate the automation to enroll a contact for a test.")
    if sent:
        act(
            lambda s: au.enroll_for_test(s, me, automation_id, email),
            f"Enrolled {email.strip()}: the next pass (within seconds) sends its first step.",
        )


def json_view(me: Actor, automation_id: int, definition: dict[str, Any], editable: bool) -> None:
    with st.expander("Definition as JSON"):
        st.caption(
            "For power users: edit and apply; it is checked first. Step paths in conditions "
            '("opened": "0") count from 0 in this JSON.'
        )
        text = st.text_area(
            "Definition JSON",
            value=json.dumps(definition, indent=2, ensure_ascii=False),
            height=320,
            key=f"au_json_{automation_id}_{hash(json.dumps(definition, sort_keys=True))}",
        )
        if st.button("Apply JSON", disabled=not editable, key="au_apply_json"):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as exc:
                st.error(f"That is not valid JSON: {md(exc.msg)} (line {exc.lineno}).")
            else:
                act(lambda s: au.update_automation(s, me, automation_id, parsed), "Saved.")


def editor(me: Actor, automation_id: int) -> None:
    automation = None
    with read_db() as session, shows_errors():
        automation = au.get_automation(session, me, automation_id)
        status = au.automation_status(session, me, automation_id)
        figures = {f.path: f for f in au.step_figures(session, me, automation_id)}
        options = au.editor_options(session, me)
        free = not au.has_entrants(session, automation_id)
        definition = dict(automation.definition)
    if st.button("All automations", icon=":material/arrow_back:", key="au_back"):
        for key in ("au_open", "au_edit", "au_add"):
            st.session_state.pop(key, None)
        st.rerun()
    if automation is None:
        return
    st.header(md(automation.name))
    controls(me, automation)
    if not free:
        st.caption(md(au.RUNNING_RULES))
    ctx = Ctx(me, automation_id, me.can("edit"), free, options, figures)
    editing = st.session_state.get("au_edit") or st.session_state.get("au_add") is not None
    live = automation.status == "active" and not editing

    @st.fragment(run_every=5 if live else None)
    def cards() -> None:
        if live:  # fresh figures on every tick
            with read_db() as session:
                ctx.figures = {f.path: f for f in au.step_figures(session, me, automation_id)}
                fresh = au.automation_status(session, me, automation_id)
        else:
            fresh = status
        trigger_card(definition, fresh, options.names)
        flow(definition["steps"], "", ctx)

    cards()
    test_enrollment(me, automation_id, automation.status)
    json_view(me, automation_id, definition, ctx.editable)
