"""Reports: a campaign's figures and charts, its recipients, and campaigns side by side."""

import streamlit as st

from core import abtest
from core.analytics import reports as analytics
from core.analytics import rollups
from ui import charts
from ui.abtest import ab_report_section
from ui.state import actor, db, read_db, shows_errors

me = actor()
st.title("Reports")

with read_db() as session:
    choices = analytics.reportable_campaigns(session, me)
if not choices:
    st.info("No campaign has been sent yet. Reports appear here once a campaign starts sending.")
    st.stop()

labels = {c.id: f"{c.name} · {c.status}" for c in choices}
wanted = st.query_params.get("campaign")
ids = list(labels)
index = ids.index(int(wanted)) if wanted and wanted.isdigit() and int(wanted) in labels else 0
# "Report" in the campaign list opens this page on that campaign.
asked = st.session_state.pop("report_campaign_id", None)
if asked in labels:
    st.session_state["report_campaign"] = asked

report_tab, compare_tab = st.tabs(["Campaign report", "Compare campaigns"])


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


with report_tab:
    campaign_id = st.selectbox(
        "Campaign", ids, index=index, format_func=lambda i: labels[i], key="report_campaign"
    )
    st.query_params["campaign"] = str(campaign_id)

    live = next(c.status for c in choices if c.id == campaign_id) in ("sending", "scheduled")

    @st.fragment(run_every=5 if live else None)
    def figures_and_charts() -> None:
        with read_db() as session, shows_errors():
            report = analytics.campaign_report(session, me, campaign_id)
            f = report.figures
            st.session_state["report_recipients"] = (campaign_id, f.recipients)
            if f.is_live:
                st.caption(":material/autorenew: Sending: this report refreshes every 5 seconds.")
            row = st.columns(6)
            row[0].metric("Recipients", f"{f.recipients:,}")
            row[1].metric(
                "Sent", f"{f.sent:,}", help=f"{f.uncertain:,} uncertain (worker died mid-send)"
            )
            row[2].metric(
                "Delivered" + (" (estimated)" if f.delivered_estimated else ""),
                f"{f.delivered:,}",
                help="The transport reports no deliveries: sent minus bounces."
                if f.delivered_estimated
                else None,
            )
            row[3].metric("Unique opens", f"{f.unique_opens:,}", help=f"total {f.total_opens:,}")
            row[4].metric("Unique clicks", f"{f.unique_clicks:,}", help=f"total {f.total_clicks:,}")
            row[5].metric("Failed", f"{f.failed:,}")
            row = st.columns(6)
            row[0].metric("Total opens", f"{f.total_opens:,}")
            row[1].metric(
                "Machine opens",
                f"{f.machine_opens:,}",
                help="prefetchers and image proxies, not counted as opens",
            )
            row[2].metric("Total clicks", f"{f.total_clicks:,}")
            row[3].metric("Hard / soft bounces", f"{f.hard_bounces:,} / {f.soft_bounces:,}")
            row[4].metric("Complaints", f"{f.complaints:,}")
            row[5].metric("Unsubscribes", f"{f.unsubscribes:,}")
            rates = f.rates
            st.dataframe(
                [
                    {
                        "rate": name.replace("_", " ").capitalize(),
                        "value": pct(rates[name]),
                        "definition": text,
                    }
                    for name, text in analytics.RATE_DEFINITIONS.items()
                ],
                hide_index=True,
            )
            st.caption(
                f"Opens and clicks are counted from the **{f.tracking_source}** tracking source."
            )
            left, right = st.columns(2)
            left.plotly_chart(charts.outcome_split(f), key="outcome")
            right.plotly_chart(charts.funnel(f), key="funnel")
            if report.timeline:
                st.plotly_chart(charts.timeline(report.timeline), key="timeline")
            else:
                st.caption("No opens or clicks yet.")
            if report.links:
                st.plotly_chart(charts.top_links(report.links), key="links")

    figures_and_charts()

    with db() as session:
        ab = abtest.ab_report(session, me, campaign_id)
    winner_pick = ab_report_section(ab, key=f"abr{campaign_id}")
    if winner_pick is not None:
        with shows_errors(), db() as session:
            abtest.choose_winner_manually(session, me, campaign_id, winner_pick)
            st.success("Winner chosen: the rest of the audience gets it now.")

    domains = rollups.campaign_domains(me.workspace_id, campaign_id)
    if domains:
        with st.expander("By recipient domain (from the rollups, refreshed every few minutes)"):
            st.dataframe(domains, hide_index=True)

    st.subheader("Recipients")
    cols = st.columns([3, 2, 1])
    search = cols[0].text_input("Search recipients", placeholder="part of an email address")
    status_filter = cols[1].selectbox(
        "Message status", ["all", "sent", "failed", "uncertain", "queued", "held", "cancelled"]
    )
    page_no = cols[2].number_input("Page", min_value=1, value=1, step=1)
    known = st.session_state.get("report_recipients")
    with db() as session, shows_errors():
        rows, total = analytics.recipients_page(
            session,
            me,
            campaign_id,
            search=search,
            status=None if status_filter == "all" else status_filter,
            limit=50,
            offset=(int(page_no) - 1) * 50,
            known_total=known[1] if known and known[0] == campaign_id else None,
        )
        st.caption(
            f"{total:,} recipients match; showing page {page_no} of {max(1, -(-total // 50))}."
        )
        st.dataframe([r.__dict__ for r in rows], hide_index=True)
    if st.button("Prepare CSV export"):
        with db() as session, shows_errors():
            st.session_state["report_csv"] = (
                campaign_id,
                analytics.recipients_csv(
                    session,
                    me,
                    campaign_id,
                    search=search,
                    status=None if status_filter == "all" else status_filter,
                ),
            )
    prepared = st.session_state.get("report_csv")
    if prepared and prepared[0] == campaign_id:
        st.download_button(
            "Download recipients CSV",
            prepared[1],
            file_name=f"campaign-{campaign_id}-recipients.csv",
            mime="text/csv",
        )

with compare_tab:
    picked = st.multiselect("Campaigns to compare", ids, format_func=lambda i: labels[i])
    if picked:
        with db() as session, shows_errors():
            table = analytics.figures_table(analytics.compare_campaigns(session, me, picked))
            st.plotly_chart(charts.comparison(table), key="compare")
            st.dataframe(table, hide_index=True)
    else:
        st.caption("Pick two or more campaigns to see their figures side by side.")
