"""The Contacts page's Forms tab (issue 17): create and edit signup forms, share them
(hosted link, embed snippet) and preview the hosted page; and the lists' signup options."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.contacts import lists
from core.contacts.lists import ListInfo
from core.content.templates import list_templates
from core.forms import service as forms
from core.forms.page import form_links
from core.infra.permissions import Actor
from ui.actions import act, flash
from ui.preview import WIDTHS, show_email
from ui.state import read_db
from ui.text import md

NEW = "New form"
_NEXT = "fm_next"  # the form to select on the next run (set before the selectbox exists)


def forms_tab(me: Actor, all_lists: list[ListInfo]) -> None:
    """Create, edit, share, preview and delete the workspace's signup forms."""
    if not all_lists:
        st.info("Create a list first (Lists tab): a form subscribes people to lists.")
        return
    # A form subscribes people only to public lists (the ones the preference centre shows).
    public_lists = [lst for lst in all_lists if lst.visibility == "public"]
    if not public_lists:
        st.info(
            "Make a list public first (Lists tab, its signup options): a form subscribes "
            "people only to public lists."
        )
        return
    with read_db() as session:
        existing = forms.list_forms(session, me)
        labels = forms.field_labels(session, me)
        templates = {t.name: t.id for t in list_templates(session, me, sort="name")}
    by_name = {f.name: f for f in existing}
    if (wanted := st.session_state.pop(_NEXT, None)) in by_name:
        st.session_state["fm_pick"] = wanted
    picked = st.selectbox("Form", [NEW, *by_name], key="fm_pick")
    form = by_name.get(picked)
    data = forms.form_input(form) if form else forms.FormInput(name="", list_ids=[])
    _editor(me, form.id if form else None, data, public_lists, labels, templates)
    if form is not None:
        _share(me, form.id)
        sure = st.checkbox(
            f"Delete the form {md(form.name)} (its consent records stay)", key="fm_del_ok"
        )
        if st.button("Delete form", disabled=not sure):
            act(lambda s: forms.delete_form(s, me, form.id), f"Deleted the form {form.name}.")


def _editor(
    me: Actor,
    form_id: str | None,
    data: forms.FormInput,
    all_lists: list[ListInfo],
    labels: dict[str, str],
    templates: dict[str, int],
) -> None:
    list_names = {lst.id: lst.name for lst in all_lists}
    asked = [f.key for f in data.fields if f.key in labels]
    key = form_id or "new"
    with st.form(f"fm_edit_{key}"):
        name = st.text_input("Form name (the page's heading)", value=data.name)
        chosen = st.multiselect(
            "Subscribes to",
            list(list_names),
            default=[i for i in data.list_ids if i in list_names],
            format_func=lambda i: list_names[i],
        )
        c1, c2 = st.columns(2)
        fields = c1.multiselect(
            "Fields asked besides email",
            list(labels),
            default=asked,
            format_func=lambda k: labels[k],
        )
        required = c2.multiselect(
            "Required fields",
            list(labels),
            default=[f.key for f in data.fields if f.required and f.key in labels],
            format_func=lambda k: labels[k],
            help="Only fields that are asked can be required.",
        )
        double = st.checkbox(
            "Double opt-in: people confirm by a link mailed to them",
            value=data.double_opt_in,
            help="Lists set to double opt-in always need the confirmation.",
        )
        consent = st.text_area(
            "Consent text (next to the button; stored with every consent)",
            value=data.consent_text,
            placeholder=forms.DEFAULT_CONSENT.format(workspace="your company"),
        )
        c3, c4 = st.columns(2)
        success = c3.text_area(
            "Success message", value=data.success_message, placeholder=forms.DEFAULT_SUCCESS
        )
        check_inbox = c4.text_area(
            "Check-your-inbox message",
            value=data.check_inbox_message,
            placeholder=forms.DEFAULT_CHECK_INBOX,
        )
        redirect = st.text_input(
            "Redirect after signing up (optional)",
            value=data.redirect_url,
            placeholder="https://www.example.com/thanks",
        )
        template_names = ["No welcome mail", *templates]
        current = next(
            (n for n, i in templates.items() if i == data.welcome_template_id), template_names[0]
        )
        welcome = st.selectbox("Welcome mail", template_names, index=template_names.index(current))
        saved = st.form_submit_button("Save form" if form_id else "Create form", type="primary")
    if not saved:
        return
    if missing := [labels[k] for k in required if k not in fields]:
        st.error(md(f"Ask {', '.join(missing)} before making it required."))
        return
    new = forms.FormInput(
        name=name,
        list_ids=chosen,
        fields=[forms.FieldSpec(k, k in required) for k in fields],
        double_opt_in=double,
        consent_text=consent,
        success_message=success,
        check_inbox_message=check_inbox,
        redirect_url=redirect,
        welcome_template_id=templates.get(welcome),
    )

    def save(session):
        if form_id is None:
            return forms.create_form(session, me, new)
        return forms.update_form(session, me, form_id, new)

    result = act(save, rerun=False)
    if result is not None:
        flash(f"Saved the form {result.name}.")
        st.session_state[_NEXT] = result.name
        st.rerun()


def _share(me: Actor, form_id: str) -> None:
    with read_db() as session:
        links = form_links(session, me, form_id)
    st.subheader("Share")
    st.caption("Hosted page: link to it from anywhere.")
    st.code(links.hosted_url, language=None)
    st.caption("Embed snippet: paste it into a page of your site; it posts to the hosted form.")
    st.code(links.snippet, language="html")
    st.subheader("Preview")
    width = st.radio("Width", list(WIDTHS), horizontal=True, key="fm_width")
    show_email(links.page_html, WIDTHS[width], height=620)


def list_options(me: Actor, all_lists: list[ListInfo]) -> None:
    """The lists with their signup options, and a form to change one list's options."""
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "name": lst.name,
                    "members": lst.members,
                    "visibility": lst.visibility,
                    "opt-in": lst.opt_in,
                    "description": lst.description,
                }
                for lst in all_lists
            ]
        ),
        width="stretch",
        hide_index=True,
    )
    if not me.can("edit"):
        return
    by_name = {lst.name: lst for lst in all_lists}
    st.markdown("**Signup options**")
    chosen = st.selectbox("List", list(by_name), key="ls_opt_pick")
    lst = by_name[chosen]
    with st.form(f"ls_options_{lst.id}"):
        c1, c2 = st.columns(2)
        visibility = c1.radio(
            "Visibility",
            ["private", "public"],
            index=["private", "public"].index(lst.visibility),
            horizontal=True,
            help="Public lists are offered to subscribers; private ones are never shown.",
        )
        opt_in = c2.radio(
            "Opt-in",
            ["single", "double"],
            index=["single", "double"].index(lst.opt_in),
            horizontal=True,
            help="Double: joining from a form needs the confirmation link.",
        )
        description = st.text_input("Description", value=lst.description)
        if st.form_submit_button("Save options"):

            def save(session):
                lists.set_list_options(session, me, lst.id, visibility=visibility, opt_in=opt_in)
                return lists.rename_list(session, me, lst.id, lst.name, description)

            act(save, lambda saved: f"Saved the options of {saved.name}.")
