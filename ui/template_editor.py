"""The template editor: name and subject, the body (visual or HTML source) with
personalisation variables, the plain-text part, preview, test send and the AI assistant.

The draft lives in session state (`tpl_*` keys); `open_editor` loads one, `editor` draws it.
"""

from __future__ import annotations

import html as html_lib

import streamlit as st

from core.contacts.service import search_contacts
from core.content import ai
from core.content.rendering import TemplateProblem
from core.content.templates import (
    TemplateDraft,
    Variable,
    check_content,
    get_template,
    list_variables,
    plain_text,
    preview,
    send_test,
    tidy_editor_html,
    update_template,
)
from core.content.templates import create_template as create_template_row
from core.infra.errors import MailwrightError
from ui.preview import WIDTHS, show_email
from ui.quill_editor import quill_editor
from ui.state import actor, db, read_db
from ui.text import md

AI_LABELS = {
    "draft": "Write a draft from a brief",
    "improve": "Improve the text",
    "shorten": "Shorten the text",
    "tone": "Change the tone",
    "subjects": "Suggest five subject lines",
}
HAND_WRITTEN_MARKERS = ("<table", "<style", "<html", "<td", "<div")

state = st.session_state


def editor_quill(value: str, key: str, variables: list[Variable]) -> str | None:
    """The visual editor (a function so tests can stand in for the browser component):
    Quill with the variables and an image inserter in its toolbar, inserting at the
    cursor; None until the user changes something."""
    return quill_editor(value, variables=variables, key=key, disabled=not actor().can("edit"))


def open_editor(template_id: int | None) -> None:
    """Load a template (or a blank one) into the editor's state."""
    if template_id is None:
        name, subject, html, text = (
            "",
            "",
            '<p>Hello {{ first_name | default("there") }},</p>',
            None,
        )
    else:
        with db() as session:
            t = get_template(session, actor(), template_id)
            name, subject, html, text = t.name, t.subject, t.html, t.text
    state.update(
        tpl_open=True,
        tpl_id=template_id,
        tpl_name=name,
        tpl_subject=subject,
        tpl_html=html,
        tpl_text=text or "",
        tpl_text_custom=bool(text),
        tpl_version=state.get("tpl_version", 0) + 1,
        tpl_mode="HTML source"
        if any(m in html.lower() for m in HAND_WRITTEN_MARKERS)
        else "Visual",
        tpl_ai_result=None,
    )


def set_html(html: str) -> None:
    """Change the body from outside the editor widget (insert, AI): remount the widget."""
    state.tpl_html = html
    state.tpl_version += 1


def current_draft() -> TemplateDraft:
    text = state.tpl_text if state.tpl_text_custom else None
    return TemplateDraft(state.tpl_name, state.tpl_subject, state.tpl_html, text)


def show_problem(exc: MailwrightError) -> None:
    if isinstance(exc, TemplateProblem):
        line = f" (line {exc.line})" if exc.line else ""
        st.error(f"**{exc.part.capitalize()}{line}:** {md(exc.message)}")
    else:
        st.error(str(exc))


def source_insert_tools(variables: list[Variable]) -> None:
    """HTML source mode: a text area cannot say where its cursor is, so the snippet is
    offered to copy (or to add at the end). The visual editor inserts at the cursor."""
    with st.expander("Insert variable", expanded=False):
        cols = st.columns([3, 2, 1.2], vertical_alignment="bottom")
        chosen = cols[0].selectbox(
            "Variable",
            variables,
            format_func=lambda v: f"{v.label} · {v.group} · {v.name}",
        )
        fallback = cols[1].text_input(
            "Fallback when empty",
            placeholder='e.g. "there"',
            disabled=chosen is None or chosen.group == "System",
        )
        snippet = chosen.snippet(fallback) if chosen else ""
        if cols[2].button("Add at the end", disabled=chosen is None):
            set_html(state.tpl_html + snippet)
            st.rerun()
        st.caption("Copy it (the icon at its right) and paste it where it belongs:")
        st.code(snippet, language="jinja2")
    with st.expander("Insert image by URL", expanded=False):
        url = st.text_input("Image URL", placeholder="https://…/banner.png")
        alt = st.text_input("Alternative text")
        if url and not url.startswith(("https://", "http://")):
            st.error("Give the address of a hosted image (https://…).")
        elif url:
            st.caption("Copy it to where it belongs in the source:")
            st.code(
                f'<img src="{html_lib.escape(url)}" alt="{html_lib.escape(alt)}" '
                'style="max-width:100%;height:auto">',
                language="html",
            )


def reload_editors() -> None:
    """Switching modes: the editor that appears loads the body as it is now (only the
    body's widgets get new keys: name and subject keep what was typed)."""
    state.tpl_body_epoch = state.get("tpl_body_epoch", 0) + 1


def body_key(kind: str) -> str:
    return f"tpl_{kind}_{state.tpl_version}_{state.get('tpl_body_epoch', 0)}"


def body_editor(variables: list[Variable]) -> None:
    mode = st.radio(
        "Editing mode",
        ["Visual", "HTML source"],
        horizontal=True,
        key="tpl_mode",
        on_change=reload_editors,
        help="The visual editor keeps simple formatting only; hand-written HTML (tables, "
        "styles) belongs in the HTML source mode.",
    )
    if mode == "Visual":
        if any(m in state.tpl_html.lower() for m in HAND_WRITTEN_MARKERS):
            st.warning(
                "This template has layout the visual editor cannot keep (tables, styles). "
                "Editing it here will simplify it; use HTML source to keep it."
            )
        st.caption(
            "The toolbar's Variables and Image menus insert where the cursor is; variables "
            "show as chips."
        )
        value = editor_quill(state.tpl_html, body_key("quill"), variables)
        if value is not None:
            state.tpl_html = tidy_editor_html(value)
    else:
        source_insert_tools(variables)
        value = st.text_area(
            "HTML",
            value=state.tpl_html,
            height=360,
            key=body_key("source"),
        )
        state.tpl_html = value


def text_part() -> None:
    custom = st.toggle(
        "Write the plain-text part myself",
        value=state.tpl_text_custom,
        key=f"tpl_text_toggle_{state.tpl_version}",
    )
    if custom and not state.tpl_text_custom:
        state.tpl_text = plain_text(state.tpl_html)
    state.tpl_text_custom = custom
    if custom:
        state.tpl_text = st.text_area(
            "Plain-text part", value=state.tpl_text, height=200, key=f"tpl_text_{state.tpl_version}"
        )
    else:
        try:
            generated = plain_text(state.tpl_html)
        except Exception:
            generated = ""
        st.text_area(
            "Plain-text part (generated from the HTML)",
            value=generated,
            height=200,
            disabled=True,
            key=f"tpl_text_generated_{hash(generated)}",
        )


def preview_tab(draft: TemplateDraft) -> None:
    cols = st.columns([2, 3])
    query = cols[0].text_input("Find a contact", placeholder="email or name", key="tpl_find")
    with read_db() as session:
        found = [(c.id, c.email) for c in search_contacts(session, actor(), query, limit=20)]
    choices = {"Sample data": None, **{email: cid for cid, email in found}}
    chosen = cols[1].selectbox("Preview with", list(choices), key="tpl_preview_contact")
    contact_id = choices.get(chosen)
    state.tpl_preview_contact_id = contact_id
    width = st.radio("Width", list(WIDTHS), horizontal=True, key="tpl_width")
    try:
        with db() as session:
            result = preview(session, actor(), draft, contact_id)
    except MailwrightError as exc:
        show_problem(exc)
        return
    st.markdown(f"**Subject:** {md(result.rendered.subject) or '—'}")
    st.caption(f"Rendered for {md(result.recipient)}")
    left, right = st.columns([3, 2])
    with left:
        show_email(result.rendered.html, WIDTHS[width])
    with right:
        st.markdown("**Plain-text part**")
        st.code(result.rendered.text, language=None, wrap_lines=True)


def test_send_tab(draft: TemplateDraft) -> None:
    to = st.text_input("Send a test to", value=actor().email, key="tpl_test_to")
    st.caption(
        "Uses the contact chosen in Preview (or sample data); the subject starts with [Test]."
    )
    if st.button("Send test", disabled=not actor().can("edit")):
        try:
            with db() as session:
                send_test(session, actor(), draft, to, state.get("tpl_preview_contact_id"))
            st.success(f"Test sent to {md(to)}.")
        except MailwrightError as exc:
            show_problem(exc)


def assistant_tab() -> None:
    if not ai.is_configured():
        st.info(ai.HOW_TO_ENABLE)
        return
    action = st.selectbox("What should it do?", list(AI_LABELS), format_func=AI_LABELS.get)
    tone = "friendly"
    if action == "tone":
        tone = st.selectbox("Tone", ai.TONES)
    if action == "draft":
        source = st.text_area("Brief", placeholder="Spring sale, 20% off shoes until Sunday…")
    else:
        source = st.text_area(
            "Text to work on",
            placeholder="Paste the part you selected; leave empty for the whole body",
        )
        source = source or state.tpl_html
    if st.button("Ask the assistant", type="primary", disabled=not actor().can("edit")):
        state.tpl_ai_result = None
        pieces: list[str] = []

        def collect():
            for piece in ai.stream(actor(), ai.Request(action, source, tone)):
                pieces.append(piece)
                yield piece

        try:
            st.write_stream(collect())
            state.tpl_ai_result = (action, source, ai.clean_output("".join(pieces)))
        except MailwrightError as exc:
            st.error(str(exc))
    result = state.get("tpl_ai_result")
    if not result:
        return
    action, source, answer = result
    if action == "subjects":
        subjects = ai.parse_subjects(answer)
        pick = st.radio("Subject lines", subjects, key="tpl_ai_subject")
        if st.button("Use this subject") and pick:
            state.tpl_subject = pick
            state.tpl_version += 1  # remount the subject field with the new value
            state.tpl_ai_result = None
            st.rerun()
        return
    st.markdown("**Suggestion**")
    st.code(answer, language="html", wrap_lines=True)
    dropped = ai.dropped_variables(source, answer) if action != "draft" else []
    if dropped:
        st.warning("The suggestion dropped personalisation: " + ", ".join(dropped))
    cols = st.columns(3)
    if action == "draft" or source == state.tpl_html:
        if cols[0].button("Replace the body"):
            set_html(answer)
            state.tpl_ai_result = None
            st.rerun()
    elif source in state.tpl_html and cols[0].button("Replace the selection"):
        set_html(state.tpl_html.replace(source, answer, 1))
        state.tpl_ai_result = None
        st.rerun()
    if cols[1].button("Append to the body"):
        set_html(state.tpl_html + answer)
        state.tpl_ai_result = None
        st.rerun()
    if cols[2].button("Discard"):
        state.tpl_ai_result = None
        st.rerun()


def editor() -> None:
    if st.button("← All templates"):
        state.tpl_open = False
        st.rerun()
    st.title(md(state.tpl_name) if state.tpl_name else "New template")
    with read_db() as session:
        variables = list_variables(session, actor())
    cols = st.columns(2)
    state.tpl_name = cols[0].text_input(
        "Name", value=state.tpl_name, key=f"tpl_name_{state.tpl_version}"
    )
    state.tpl_subject = cols[1].text_input(
        "Default subject", value=state.tpl_subject, key=f"tpl_subject_{state.tpl_version}"
    )
    body_editor(variables)
    text_part()
    draft = current_draft()
    problem = None
    try:
        with db() as session:
            warnings = check_content(session, actor(), draft)
    except MailwrightError as exc:
        problem, warnings = exc, []
        show_problem(exc)
    for warning in warnings:
        st.warning(warning)
    if st.button(
        "Save template", type="primary", disabled=not actor().can("edit") or bool(problem)
    ):
        try:
            with db() as session:
                if state.tpl_id is None:
                    template, _ = create_template_row(session, actor(), draft)
                else:
                    template, _ = update_template(session, actor(), state.tpl_id, draft)
                state.tpl_id = template.id
            st.success("Saved.")
        except MailwrightError as exc:
            show_problem(exc)
    preview_t, test_t, ai_t = st.tabs(["Preview", "Test send", "AI assistant"])
    with preview_t:
        preview_tab(draft)
    with test_t:
        test_send_tab(draft)
    with ai_t:
        assistant_tab()
