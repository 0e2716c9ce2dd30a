"""The Contacts page's Import tab: upload, preview, map columns, import now or as a job.

Small files import while the page waits (with a progress bar); files over
IMPORT_INLINE_MAX_ROWS become a background job whose progress the tab follows.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core.contacts import importing as importer
from core.infra.config import settings
from core.infra.db import get_sessionmaker
from core.infra.permissions import Actor
from core.models import FIELD_TYPES
from core.models.statuses import JobStatus
from ui.state import db, read_db, shows_errors
from ui.text import md


def show_result(result: dict) -> None:
    cols = st.columns(4)
    for column, key in zip(cols, ["created", "updated", "skipped", "invalid"], strict=True):
        column.metric(key.capitalize(), f"{result[key]:,}")
    if result.get("errors"):
        st.caption("Rows not imported (first 100 shown; the file has all of them with the reason):")
        st.dataframe(
            pd.DataFrame(result["errors"], columns=["line", "email", "reason"]),
            width="stretch",
            hide_index=True,
        )
    errors_file = result.get("errors_file")
    if errors_file and Path(errors_file).exists():
        st.download_button(
            "Download the rows not imported (CSV)",
            Path(errors_file).read_bytes(),
            file_name=Path(errors_file).name,
            key=f"dl_{errors_file}",
        )


def show_jobs(me: Actor) -> None:
    with read_db() as session:
        jobs = importer.import_jobs(session, me)
        shown = [(j.id, j.status, j.progress, j.total, j.result, j.error, j.params) for j in jobs]
    for job_id, status, progress, total, result, error, params in shown:
        name = Path(params.get("path", "")).name.split("-", 1)[-1]
        st.markdown(f"**Import {job_id}** · {md(name)} · {status}")
        if status in (JobStatus.PENDING, JobStatus.RUNNING):
            st.progress(min(1.0, progress / total) if total else 0.0, f"{progress:,} of ~{total:,}")
        elif status == "failed":
            st.error(error)
        elif result:
            show_result(result)


def import_tab(me: Actor, defs: list, list_ids: dict[str, int]) -> None:
    """The tab: `defs` are the custom fields, `list_ids` the lists by name."""
    uploaded = st.file_uploader("CSV or Excel file", type=["csv", "tsv", "txt", "xlsx"])
    if uploaded is not None and st.session_state.get("imp_file_id") != uploaded.file_id:
        st.session_state["imp_file_id"] = uploaded.file_id
        st.session_state.pop("imp_path", None)
        st.session_state.pop("imp_result", None)
        with shows_errors():
            saved = importer.save_upload(uploaded.name, uploaded.getvalue())
            st.session_state["imp_path"] = str(saved)
    path = st.session_state.get("imp_path") if uploaded is not None else None
    if path:
        sheet = None
        if path.lower().endswith(".xlsx"):
            with shows_errors():
                sheet = st.selectbox("Sheet", importer.excel_sheets(Path(path)))
        preview = None
        with shows_errors(), db() as session:
            preview = importer.inspect_file(session, me, path, sheet)
        if preview is not None:
            how = (
                f"delimiter {preview.delimiter!r}, {preview.encoding}"
                if preview.delimiter
                else f"sheet {preview.sheet}"
            )
            st.caption(f"About {preview.estimated_rows:,} rows · {how}")
            st.dataframe(
                pd.DataFrame(
                    [r + [""] * (len(preview.columns) - len(r)) for r in preview.rows],
                    columns=preview.columns,
                ).iloc[:, : len(preview.columns)],
                width="stretch",
                hide_index=True,
            )
            st.markdown("**Columns**: where each one goes")
            targets = ["", *importer.STANDARD_TARGETS] + [f"custom:{f.key}" for f in defs]
            targets += [f"custom:{k}" for k in preview.new_fields if f"custom:{k}" not in targets]
            labels = {"": "(skip)", **importer.TARGET_LABELS}
            labels.update({f"custom:{f.key}": f"Custom: {f.label}" for f in defs})
            labels.update(
                {f"custom:{k}": f"New custom field: {v[0]}" for k, v in preview.new_fields.items()}
            )
            mapping, new_fields = {}, {}
            for column in preview.columns:
                left, right = st.columns([3, 2])
                guess = preview.mapping.get(column, "")
                target = left.selectbox(
                    f"Column “{column}”",
                    targets,
                    index=targets.index(guess) if guess in targets else 0,
                    format_func=labels.get,
                    key=f"imp_map_{column}",
                )
                mapping[column] = target
                key = target.removeprefix("custom:")
                if target.startswith("custom:") and key in preview.new_fields:
                    inferred = preview.inferred.get(column, "text")
                    type_ = right.selectbox(
                        f"Type of {key}",
                        FIELD_TYPES,
                        index=FIELD_TYPES.index(inferred),
                        key=f"imp_type_{column}",
                    )
                    new_fields[key] = (preview.new_fields[key][0], type_)
            # Offered, never silent: a guess from the country column, off by default.
            offer = importer.zone_guess_offer(preview, mapping)
            guess_timezone = False
            if offer is not None:
                guess_timezone = st.checkbox(
                    f"Guess time zone from country (column “{offer.country_column}”)",
                    value=False,
                    key="imp_guess_tz",
                    help="For sending at a time of day in each contact's time zone.",
                )
                st.caption(offer.note)
            list_choice = st.selectbox(
                "Add everyone to a list", ["(no list)", *list_ids, "(a new list)"]
            )
            new_list = (
                st.text_input("New list name", key="imp_new_list")
                if list_choice == "(a new list)"
                else ""
            )
            update_existing = st.checkbox(
                "Update contacts that already exist (never changes their status)",
                key="imp_update",
            )
            if st.button("Import contacts", type="primary"):
                options = importer.ImportOptions(
                    mapping=mapping,
                    new_fields=new_fields,
                    list_name=new_list or None,
                    list_id=list_ids.get(list_choice),
                    update_existing=update_existing,
                    sheet=sheet,
                    file_name=uploaded.name,
                    guess_timezone=guess_timezone,
                )
                if preview.estimated_rows > settings.import_inline_max_rows:
                    with shows_errors(), db() as session:
                        importer.start_import_job(
                            session, me, path, options, preview.estimated_rows
                        )
                        st.success(
                            "The import runs in the background: follow it below; you may leave "
                            "this page and come back."
                        )
                else:
                    bar = st.progress(0.0, "Importing…")

                    def progress(done: int, total: int) -> None:
                        bar.progress(min(1.0, done / max(total, 1)), f"{done:,} of ~{total:,} rows")

                    with shows_errors():
                        # It commits once per chunk itself: it takes the session factory.
                        result = importer.import_contacts(
                            get_sessionmaker(), me, path, options, progress
                        )
                        st.session_state["imp_result"] = result.to_dict()
    if result := st.session_state.get("imp_result"):
        st.success("Import finished.")
        show_result(result)

    st.subheader("Background imports")
    with read_db() as session:
        active = any(
            j.status in (JobStatus.PENDING, JobStatus.RUNNING)
            for j in importer.import_jobs(session, me)
        )
    if active:
        st.fragment(run_every="3s")(show_jobs)(me)
    else:
        show_jobs(me)
