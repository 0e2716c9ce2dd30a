"""Dashboard: the landing page after sign-in."""

import streamlit as st

from core.accounts.workspaces import get_workspace
from core.analytics.reports import dashboard
from ui.format import when
from ui.state import actor, read_db
from ui.text import md

me = actor()
with read_db() as session:
    workspace_name = get_workspace(session, me).name
    data = dashboard(session, me)


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def count(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


st.title(f"Dashboard · {md(workspace_name)}")

actions = st.columns(3)
actions[0].page_link("pages/campaigns.py", label="Create a campaign", icon=":material/send:")
actions[1].page_link("pages/contacts.py", label="Add contacts", icon=":material/person_add:")
actions[2].page_link("pages/templates.py", label="Create a template", icon=":material/edit_note:")

row = st.columns(5)
change = data.subscribed_change_30d
row[0].metric(
    "Subscribed contacts",
    f"{data.subscribed:,}",
    delta=None if change is None else f"{change:+,} in 30 days",
    help="Change: contacts added minus contacts lost (unsubscribed, complained, hard-bounced) "
    "in the last 30 days.",
)
row[1].metric("Emails sent, 30 days", count(data.sent_30d))
row[2].metric("Emails sent, all time", count(data.sent_all_time))
row[3].metric(
    "Average open rate",
    pct(data.avg_open_rate),
    help=f"Over the last {data.rate_campaigns} campaigns with deliveries (unique human opens ÷ delivered).",
)
row[4].metric(
    "Average click rate",
    pct(data.avg_click_rate),
    help=f"Over the last {data.rate_campaigns} campaigns with deliveries (unique clicks ÷ delivered).",
)

left, right = st.columns(2)
with left:
    st.subheader("Recent campaigns")
    if not data.recent:
        st.caption("No campaign has been sent yet.")
    for c in data.recent:
        started = when(c.started_at)
        st.page_link(
            "pages/reports.py",
            label=f"{md(c.name)} · {c.status} · {started}",
            icon=":material/monitoring:",
            query_params={"campaign": str(c.id)},
        )
    st.subheader("Upcoming")
    if not data.upcoming:
        st.caption("Nothing scheduled.")
    for c in data.upcoming:
        st.markdown(f"**{md(c.name)}** · {when(c.scheduled_at)}")
with right:
    st.subheader("Deliverability, last 30 days")
    health = data.health
    if not health.sent:
        st.caption("Nothing sent in the last 30 days.")
    else:
        # Amber at 80 % of an SES review level, red at it (then "Send now" needs an owner).
        level = health.review_level
        if level == "over":
            st.badge("Over an SES review level", icon=":material/front_hand:", color="red")
        elif level == "close":
            st.badge("Close to an SES review level", icon=":material/warning:", color="orange")
        else:
            st.badge("Under SES's review levels", icon=":material/check:", color="green")
        cols = st.columns(2)
        cols[0].metric("Bounce rate", pct(health.bounce_rate), help="bounces ÷ sent")
        cols[1].metric("Complaint rate", pct(health.complaint_rate), help="complaints ÷ sent")
        for warning in health.warnings:
            st.warning(warning)
        if not health.warnings:
            st.success("Healthy: well under SES's review thresholds and Gmail's spam rate.")
        st.caption(
            "SES reviews an account at 5 % bounces or 0.1 % complaints and may pause it at 10 % "
            "or 0.5 %; Gmail asks bulk senders to stay under 0.3 % spam."
        )

if data.growth:
    from ui import charts  # plotly loads only when there is a chart to draw

    st.plotly_chart(charts.contact_growth(data.growth), key="growth")
st.caption(
    "Figures are up to the minute: "
    + (
        f"the rollups of {when(data.rollup_built_at)} plus everything since."
        if data.rollup_built_at
        else "counted from the database."
    )
)
