"""Contacts: the address book (paged on the server), custom fields, lists, import and export."""

from datetime import date
from pathlib import Path

import pandas as pd
import streamlit as st

from core.contacts import export as exporter
from core.contacts import fields, lists
from core.contacts import service as book
from core.models import CONTACT_STATUSES, FIELD_TYPES
from ui import contact_import
from ui import forms as signup_forms
from ui.actions import act
from ui.format import when
from ui.state import actor, db, read_db, shows_errors
from ui.text import md

me = actor()
STANDARD_LABELS = {name: fields.FIELD_LABELS[name] for name in fields.CONTACT_COLUMNS[1:]}
SORTS = {
    "Created": "created_at",
    "Updated": "updated_at",
    "Email": "email",
    "First name": "first_name",
    "Last name": "last_name",
    "Company": "company",
    "Status": "status",
}


def custom_inputs(defs: list, values: dict, prefix: str) -> dict:
    """One typed input per custom field; returns key -> value (None when empty)."""
    chosen: dict = {}
    for f in defs:
        label = f"{f.label} ({f.key})"
        current = values.get(f.key)
        key = f"{prefix}_cf_{f.key}"
        if f.type == "number":
            chosen[f.key] = st.number_input(
                label, value=float(current) if current is not None else None, key=key
            )
        elif f.type == "date":
            chosen[f.key] = st.date_input(
                label, value=date.fromisoformat(current) if current else None, key=key
            )
        elif f.type == "boolean":
            options = ["", "yes", "no"]
            index = 0 if current is None else (1 if current else 2)
            picked = st.selectbox(label, options, index=index, key=key)
            chosen[f.key] = {"yes": True, "no": False}.get(picked)
        else:
            chosen[f.key] = st.text_input(label, value=current or "", key=key)
    return {k: v for k, v in chosen.items() if v is not None and v != ""}


def contact_form(prefix: str, defs: list, all_lists: list, contact=None, member_of=()):
    """The inputs of the add and edit forms, as a ContactInput."""
    left, right = st.columns(2)
    email = left.text_input("Email", value=contact.email if contact else "", key=f"{prefix}_email")
    values = {}
    for i, (column, label) in enumerate(STANDARD_LABELS.items()):
        target = left if i % 2 else right
        values[column] = target.text_input(
            label, value=getattr(contact, column) if contact else "", key=f"{prefix}_{column}"
        )
    # "unconfirmed" only comes from a double opt-in signup: offered only to keep it.
    choices = list(book.SETTABLE_STATUSES)
    if contact and contact.status not in choices:
        choices.append(contact.status)
    status = st.selectbox(
        "Status",
        choices,
        index=choices.index(contact.status) if contact else 0,
        key=f"{prefix}_status",
    )
    by_name = {lst.name: lst.id for lst in all_lists}
    chosen_lists = st.multiselect(
        "Lists",
        list(by_name),
        default=[lst.name for lst in all_lists if lst.id in member_of],
        key=f"{prefix}_lists",
    )
    custom = custom_inputs(defs, contact.custom_fields if contact else {}, prefix)
    return book.ContactInput(
        email=email,
        status=status,
        custom_fields=custom,
        list_ids=[by_name[n] for n in chosen_lists],
        **values,
    )


st.title("Contacts")
with read_db() as session:
    all_lists = lists.list_lists(session, me)
    defs = fields.list_custom_fields(session, me)
    counts = {f.key: fields.count_field_values(session, me, f.key) for f in defs}
list_ids = {lst.name: lst.id for lst in all_lists}

tab_names = ["Contacts", "Import", "Custom fields", "Lists"]
if me.can("edit"):
    tab_names.append("Forms")
# Keyed: a save on one tab reruns the page and comes back to that tab.
table_tab, import_tab, fields_tab, lists_tab, *forms_tab = st.tabs(tab_names, key="ct_tabs")

# --- the table ----------------------------------------------------------------------------------
with table_tab:
    c1, c2, c3 = st.columns([3, 2, 2])
    search = c1.text_input("Search email or name", key="ct_search")
    statuses = c2.multiselect("Status", CONTACT_STATUSES, key="ct_statuses")
    list_name = c3.selectbox("List", ["All contacts", *list_ids], key="ct_list")
    c4, c5, c6, c7, c8 = st.columns([2, 2, 2, 1, 1])
    created_from = c4.date_input("Created from", value=None, key="ct_from")
    created_to = c5.date_input("Created to", value=None, key="ct_to")
    sort_label = c6.selectbox("Sort by", list(SORTS), key="ct_sort")
    descending = c7.checkbox("Descending", value=True, key="ct_desc")
    page_size = c8.selectbox("Per page", book.PAGE_SIZES, key="ct_page_size")
    flt = book.ContactFilter(
        search=search,
        statuses=tuple(statuses),
        list_id=list_ids.get(list_name),
        created_from=created_from,
        created_to=created_to,
    )
    count_line, page_box = st.columns([5, 1], vertical_alignment="bottom")
    page_number = page_box.number_input("Page", min_value=1, value=1, step=1, key="ct_page")
    with read_db() as session:
        page = book.page_contacts(
            session, me, flt, SORTS[sort_label], descending, int(page_number), page_size
        )
        rows = [
            {
                "ID": c.id,
                "Email": c.email,
                "Name": f"{c.first_name} {c.last_name}".strip(),
                "Status": c.status,
                "Company": c.company,
                "City": c.city,
                "Country": c.country,
                "Created": when(c.created_at),
                **{f.label or f.key: (c.custom_fields or {}).get(f.key) for f in defs},
            }
            for c in page.rows
        ]
    plural = "" if page.total == 1 else "s"
    count_line.caption(f"{page.total:,} contact{plural} · page {page.page} of {page.pages:,}")
    emails = {r["ID"]: r["Email"] for r in rows}
    if rows:
        st.dataframe(pd.DataFrame(rows).set_index("ID"), width="stretch")
    else:
        st.info("No contacts match. Add one below or import a file.")

    # Bulk actions on the rows of this page.
    with st.expander("Selected contacts: delete, status, lists"):
        select_all = st.checkbox("Select all on this page", key="ct_all")
        selected = st.multiselect(
            "Selected contacts",
            list(emails),
            default=list(emails) if select_all else [],
            format_func=emails.get,
            key=f"ct_selected_{select_all}",
        )
        action = st.selectbox(
            "Action", ["Delete", "Set status", "Add to list", "Remove from list"], key="ct_action"
        )
        new_status, target_list, confirmed = None, None, False
        if action == "Set status":
            new_status = st.selectbox("New status", book.SETTABLE_STATUSES, key="ct_bulk_status")
            confirmed = st.checkbox(
                "They asked to be subscribed again (needed to re-subscribe)",
                key="ct_bulk_resub",
            )
        elif action in ("Add to list", "Remove from list"):
            target_list = st.selectbox("To list", list(list_ids) or ["(no lists yet)"])
        else:
            confirmed = st.checkbox(
                f"Yes, delete {len(selected)} contact(s)", key="ct_bulk_delete_ok"
            )
        if st.button("Apply to selected", disabled=not selected):
            if action == "Delete" and not confirmed:
                st.warning("Tick the box to confirm the deletion.")
            elif action == "Delete":
                act(
                    lambda s: book.delete_contacts(s, me, selected),
                    lambda n: f"Deleted {n} contact(s).",
                )
            elif action == "Set status":
                act(
                    lambda s: book.set_status(s, me, selected, new_status, confirmed),
                    lambda n: f"Changed the status of {n} contact(s) to {new_status}.",
                )
            elif target_list not in list_ids:
                st.warning("Create a list first (Lists tab).")
            elif action == "Add to list":
                act(
                    lambda s: lists.add_members(s, me, list_ids[target_list], selected),
                    lambda n: f"Added {n} contact(s) to {target_list}.",
                )
            else:
                act(
                    lambda s: lists.remove_members(s, me, list_ids[target_list], selected),
                    lambda n: f"Removed {n} contact(s) from {target_list}.",
                )

    # Export what the filter shows.
    e1, e2 = st.columns([1, 3])
    fmt = e1.selectbox("Export format", ["csv", "xlsx"], key="ct_export_fmt")
    if e2.button(f"Export {page.total:,} contacts"):
        with shows_errors(), db() as session:
            st.session_state["ct_export"] = str(exporter.export_contacts(session, me, flt, fmt))
    if exported := st.session_state.get("ct_export"):
        path = Path(exported)
        if path.exists():
            st.download_button("Download the export", path.read_bytes(), file_name=path.name)
    if e2.button(f"Export consent of {page.total:,} contacts", key="ct_consent_all"):
        with shows_errors(), read_db() as session:
            st.session_state["ct_consent_csv"] = exporter.consent_csv(session, me, flt=flt)
    if consent_file := st.session_state.get("ct_consent_csv"):
        st.download_button(
            "Download the consent record",
            consent_file,
            file_name="consent.csv",
            mime="text/csv",
            key="ct_consent_all_dl",
        )

    with st.expander("Add a contact"), st.form("add_contact", clear_on_submit=True):
        data = contact_form("add", defs, all_lists)
        if st.form_submit_button("Add contact"):
            act(
                lambda s: book.create_contact(s, me, data),
                lambda c: f"Added {c.email} ({c.status}).",
            )

    # Detail view and editing of one contact.
    st.subheader("Contact details")
    opened = st.selectbox(
        "Open a contact",
        [None, *emails],
        format_func=lambda cid: "—" if cid is None else emails[cid],
        key="ct_open",
    )
    if opened is not None:
        with read_db() as session:
            contact = book.get_contact(session, me, opened)
            member_of = {lst.id for lst in lists.lists_of(session, me, opened)}
            activity = book.contact_activity(session, me, opened)
            history = [
                (h.created_at, h.action, h.detail) for h in book.status_history(session, me, opened)
            ]
            consent = exporter.contact_consent(session, me, opened)
            consent_file = exporter.consent_csv(session, me, contact_id=opened)
        st.markdown(f"**{md(contact.email)}** · {contact.status} · source {md(contact.source)}")
        st.caption(
            f"Created {when(contact.created_at)} · updated "
            f"{when(contact.updated_at)} · lists: "
            + (", ".join(lst.name for lst in all_lists if lst.id in member_of) or "none")
        )
        m = st.columns(5)
        for column, type_ in zip(m, ["sent", "delivered", "open", "click", "bounce"], strict=True):
            column.metric(type_.capitalize(), activity.counts.get(type_, 0))
        if activity.messages:
            st.markdown("Messages received")
            st.dataframe(pd.DataFrame(activity.messages), width="stretch", hide_index=True)
        if activity.events:
            st.markdown("Email activity")
            st.dataframe(pd.DataFrame(activity.events), width="stretch", hide_index=True)
        if not activity.messages and not activity.events:
            st.caption("No email activity yet.")
        if history:
            st.markdown("Status changes")
            st.dataframe(
                pd.DataFrame(history, columns=["when", "change", "detail"]),
                width="stretch",
                hide_index=True,
            )
        st.markdown("Consent record")
        if consent:
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "when": when(r["time"]),
                            "action": r["action"],
                            "source": r["source_label"],
                            "detail": r["source_detail"],
                            "lists": r["lists"] or "all mail",
                            "by": r["by_user"],
                            "IP": r["ip"],
                            "confirmed": when(r["confirmed_at"]) if r["confirmed_at"] else "",
                        }
                        for r in consent
                    ]
                ),
                width="stretch",
                hide_index=True,
            )
        else:
            st.caption("No consent recorded for this contact.")
        st.download_button(
            "Export consent",
            consent_file,
            file_name=f"consent-{opened}.csv",
            mime="text/csv",
            key=f"ct_consent_{opened}",
        )
        with st.form(f"edit_contact_{opened}"):
            data = contact_form(f"edit{opened}", defs, all_lists, contact, member_of)
            resubscribe = st.checkbox(
                "They asked to receive email again (needed to re-subscribe an unsubscribed, "
                "bounced or complained contact; it is recorded)",
                key=f"edit{opened}_resub",
            )
            if st.form_submit_button("Save changes"):
                act(
                    lambda s: book.update_contact(s, me, opened, data, resubscribe),
                    lambda c: f"Saved {c.email} ({c.status}).",
                )
        sure = st.checkbox("Yes, delete this contact", key=f"del_ok_{opened}")
        if st.button("Delete this contact", disabled=not sure):
            st.session_state.pop("ct_open", None)
            act(lambda s: book.delete_contacts(s, me, [opened]), f"Deleted {contact.email}.")

# --- import --------------------------------------------------------------------------------------
with import_tab:
    contact_import.import_tab(me, defs, list_ids)

# --- custom fields -------------------------------------------------------------------------------
with fields_tab:
    if defs:
        st.dataframe(
            pd.DataFrame(
                [
                    {"key": f.key, "label": f.label, "type": f.type, "contacts": counts[f.key]}
                    for f in defs
                ]
            ),
            width="stretch",
            hide_index=True,
        )
    else:
        st.caption("No custom fields yet. Imports create them from unmatched columns.")
    with st.form("new_field", clear_on_submit=True):
        st.markdown("**New custom field**")
        a, b, c = st.columns(3)
        key = a.text_input("Key", help="lower-case letters, digits and _, e.g. plan_tier")
        label = b.text_input("Label")
        type_ = c.selectbox("Type", FIELD_TYPES)
        if st.form_submit_button("Create field"):
            act(
                lambda s: fields.create_custom_field(s, me, key, label, type_),
                lambda f: f"Created the field {f.key}.",
            )
    if defs:
        by_key = {f.key: f for f in defs}
        field_key = st.selectbox("Field", list(by_key), key="cf_pick")
        new_label = st.text_input("New label", value=by_key[field_key].label, key="cf_label")
        if st.button("Rename label"):
            act(
                lambda s: fields.rename_custom_field(s, me, by_key[field_key].id, new_label),
                f"Renamed {field_key}.",
            )
        sure = st.checkbox(
            f"Delete {field_key} and the values {counts[field_key]:,} contact(s) hold",
            key="cf_delete_ok",
        )
        if st.button("Delete field", disabled=not sure):
            act(
                lambda s: fields.delete_custom_field(s, me, by_key[field_key].id),
                lambda n: f"Deleted {field_key} ({n:,} values removed).",
            )

# --- lists -----------------------------------------------------------------------------------------
with lists_tab:
    if all_lists:
        signup_forms.list_options(me, all_lists)
    else:
        st.caption("No lists yet.")
    with st.form("new_list", clear_on_submit=True):
        name = st.text_input("List name")
        description = st.text_input("Description")
        if st.form_submit_button("Create list"):
            act(
                lambda s: lists.create_list(s, me, name, description),
                lambda lst: f"Created the list {lst.name}.",
            )
    if all_lists:
        chosen = st.selectbox("List", list(list_ids), key="ls_pick")
        renamed = st.text_input("New name", value=chosen, key="ls_name")
        if st.button("Rename list"):
            act(
                lambda s: lists.rename_list(s, me, list_ids[chosen], renamed),
                lambda lst: f"Renamed {md(chosen)} to {md(lst.name)}.",
            )
        sure = st.checkbox(f"Delete {md(chosen)} (its contacts stay)", key="ls_delete_ok")
        if st.button("Delete list", disabled=not sure):
            act(lambda s: lists.delete_list(s, me, list_ids[chosen]), f"Deleted the list {chosen}.")

# --- signup forms (editors and up) -------------------------------------------------------------
for tab in forms_tab:
    with tab:
        signup_forms.forms_tab(me, all_lists)
