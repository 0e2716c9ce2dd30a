"""Data: read-only SQL over this workspace's DuckDB rollups, for the data team."""

from datetime import datetime

import streamlit as st

from core.analytics import rollups
from core.infra import clock
from core.infra.config import settings
from ui.format import when
from ui.state import actor, db, read_db, shows_errors
from ui.text import md

me = actor()
st.title("Data")
st.caption(
    "Read-only SQL (DuckDB) over the rollups of this workspace. One SELECT at a time, "
    "at most 1,000 rows, stopped after 10 seconds."
)

POLL_SECONDS = 2


def ago(then: datetime) -> str:
    """ "just now", "3 minutes ago", "2 hours ago", "5 days ago"."""
    seconds = max(int((clock.now() - then).total_seconds()), 0)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def rebuild_panel(watching: bool) -> None:
    """When the rollups were built, and the progress of a rebuild on its way."""
    status = rollups.rollup_status()
    with read_db() as session:
        job = rollups.rebuild_status(session, me)
    running = job is not None and job.active
    if watching and not running:
        st.rerun()  # done: draw the whole page again from the new file, without the timer
    if status is None:
        st.info("The rollups have not been built yet; the worker builds them every few minutes.")
    else:
        built, every = status["built_at"], max(settings.rollup_interval_seconds // 60, 1)
        st.markdown(
            f"**Built {ago(built)}** ({when(built)}), "
            f"up to event #{status['events_max_id'] or 0:,}. "
            f"The worker rebuilds them every {every} minute{'s' if every != 1 else ''}; "
            "the dashboard adds newer activity by itself."
        )
    if running:
        st.progress(job.fraction, text=job.text)
    elif job is not None and job.status == "failed":
        st.error(f"The last rebuild failed: {md(job.error)}")


with read_db() as session:
    latest = rollups.rebuild_status(session, me)
watching = latest is not None and latest.active
# In a container of its own, so what follows keeps its place whatever the panel draws
# (a moved button was left behind as a stale copy while the fragment polled).
with st.container():
    st.fragment(run_every=POLL_SECONDS if watching else None)(rebuild_panel)(watching)
if me.can("edit"):
    # Outside the fragment: the page is drawn again when a rebuild starts and ends.
    clicked = st.button(
        "Rebuild now",
        icon=":material/refresh:",
        disabled=watching,
        help="A rebuild is already on its way." if watching else None,
    )
    if clicked:
        queued = None
        with shows_errors(), db() as session:
            queued = rollups.request_rebuild(session, me)
        if queued is not None:  # rerun outside the transaction, or it would roll back
            st.rerun()

status = rollups.rollup_status()
if status is None:
    st.stop()

with st.expander("Tables"):
    for name, text in rollups.TABLES.items():
        st.markdown(f"- **{name}**: {text}")

st.write("Example queries:")
examples = st.columns(3)
for i, (title, sql) in enumerate(rollups.EXAMPLE_QUERIES.items()):
    if examples[i % 3].button(title, key=f"example_{i}"):
        st.session_state["data_sql"] = sql

st.session_state.setdefault("data_sql", "SELECT * FROM campaigns ORDER BY started_at DESC LIMIT 20")
sql = st.text_area("SQL", key="data_sql", height=140)
if st.button("Run query", type="primary"):
    with shows_errors():
        result = rollups.workspace_query(me.workspace_id, sql, row_limit=1000, time_limit=10.0)
        st.session_state["data_result"] = result
result = st.session_state.get("data_result")
if result is not None:
    import pandas as pd

    frame = pd.DataFrame(result.rows, columns=result.columns)
    st.caption(
        f"{len(frame):,} rows in {result.seconds:.2f} s"
        + (" (cut at the row limit)" if result.truncated else "")
    )
    st.dataframe(frame, hide_index=True)
    st.download_button(
        "Download CSV", frame.to_csv(index=False), file_name="query.csv", mime="text/csv"
    )

st.subheader("Open the rollups directly")
st.markdown(
    "The file is rebuilt beside the old one and renamed over it, so opening it read-only "
    "never blocks a rebuild and never shows half of one. It holds every workspace: filter "
    f"on `workspace_id = {me.workspace_id}`."
)
path = status["path"] if me.can("admin") else str(settings.rollup_path)
st.code(
    f"""import duckdb
con = duckdb.connect("{path}", read_only=True)
con.sql("SELECT * FROM campaigns WHERE workspace_id = {me.workspace_id}").df()""",
    language="python",
)
st.code(f"duckdb -readonly {path}", language="sh")

st.write("Or take this workspace's tables home as a DuckDB file of their own:")
if st.button("Prepare download"):
    with shows_errors():
        st.session_state["data_export"] = rollups.export_workspace(me.workspace_id)
if st.session_state.get("data_export"):
    st.download_button(
        "Download rollups.duckdb",
        st.session_state["data_export"],
        file_name="rollups.duckdb",
        mime="application/octet-stream",
    )
