"""Dashboard: the landing page after sign-in."""

import streamlit as st

from core.overview import workspace_counts
from core.workspaces import get_workspace
from ui.state import actor, db

me = actor()
with db() as session:
    workspace = get_workspace(session, me)
    counts = workspace_counts(session, me)
    workspace_name = workspace.name

st.title(f"Dashboard · {workspace_name}")
cols = st.columns(4)
cols[0].metric("Subscribed contacts", f"{counts.subscribed:,}")
cols[1].metric("All contacts", f"{sum(counts.contacts_by_status.values()):,}")
cols[2].metric("Templates", counts.templates)
cols[3].metric("Campaigns", sum(counts.campaigns_by_status.values()))
st.caption("Rates, trends and deliverability health arrive with the analytics issue (7).")
