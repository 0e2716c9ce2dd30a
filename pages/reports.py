"""Reports: a campaign's figures and charts, its recipients, and campaigns side by side."""

import streamlit as st

from core import abtest
from core.analytics import reports as analytics
from core.analytics import rollups
from ui import charts
from ui.abtest import ab_report_section
from ui.automation_report import automation_report_section
from ui.deliverability import guard_report_notice
from ui.format import when, zone_label
from ui.resend import resend_section
from ui.state import actor, db, read_db, shows_errors
from ui.waves import waves_section

me = actor()
st.title("Reports")

with read_db() as session:
    choices = analytics.reportable_campaigns(session, me)

labels = {c.id: f"{c.name} · {c.status}" for c in choices}
wanted = st.query_params.get("campaign")
ids = list(labels)
index = ids.index(int(wanted)) if wanted and wanted.isdigit() and int(wanted) in labels else 0
# "Report" in the campaign list opens this page on that campaign.
asked = st.session_state.pop("report_campaign_id", None)
if asked in labels:
    st.session_state["report_campaign"] = asked

# A key keeps the chosen tab across reruns (picking campaigns to compare used to jump
# back to the first tab); "rerun" lets a hidden tab skip its work. "Report" in the
# automation editor opens the automation tab.
TABS = ["Campaign report", "Compare campaigns", "Automation report"]
if st.session_state.get("report_automation") is not None:
    st.session_state["report_tabs"] = TABS[2]
report_tab, compare_tab, automation_tab = st.tabs(TABS, key="report_tabs", on_change="rerun")
with automation_tab:
    automation_report_section(me)
if not choices:
    with report_tab:
        st.info(
            "No campaign has been sent yet. Reports appear here once a campaign starts sending."
        )
    st.stop()
TRACKING = {
    "own": "Mailwright's own tracking pixel and links",
    "ses": "SES event publishing",
}
RECIPIENT_COLUMNS = {
    key: st.column_config.Column(label) for key, label in analytics.RECIPIENT_LABELS.items()
}
DOMAIN_COLUMNS = {
    "domain": st.column_config.TextColumn("Recipient domain"),
    "recipients": st.column_config.NumberColumn("Recipients", format="localized"),
    "sent": st.column_config.NumberColumn("Sent", format="localized"),
    "delivered": st.column_config.NumberColumn("Delivered", format="localized"),
    "bounces": st.column_config.NumberColumn("Bounced", format="localized"),
    "complaints": st.column_config.NumberColumn("Spam complaints", format="localized"),
    "unique_opens": st.column_config.NumberColumn("People who opened", format="localized"),
    "unique_clicks": st.column_config.NumberColumn("People who clicked", format="localized"),
    "open_rate": st.column_config.NumberColumn("Open rate", format="percent"),
    "bounce_rate": st.column_config.NumberColumn("Bounce rate", format="percent"),
}


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


with report_tab:
    campaign_id = st.selectbox(
        "Campaign", ids, index=index, format_func=lambda i: labels[i], key="report_campaign"
    )
    st.query_params["campaign"] = str(campaign_id)

    live = next(c.status for c in choices if c.id == campaign_id) in ("sending", "scheduled")
    guard_report_notice(me, campaign_id)  # paused by the deliverability guard, and why

    @st.fragment(run_every=5 if live else None)
    def figures_and_charts() -> None:
        with read_db() as session, shows_errors():
            report = analytics.campaign_report(session, me, campaign_id)
            f = report.figures
            st.session_state["report_recipients"] = (
                campaign_id,
                f.recipients,
                f.delivered_estimated,
            )
            if live and not f.is_live:
                st.rerun()  # it finished: draw the page again, without the timer
            if f.is_live:
                st.caption(":material/autorenew: Sending: this report refreshes every 5 seconds.")
            row = st.columns(6)
            row[0].metric("Recipients", f"{f.recipients:,}", help="People this campaign is for.")
            row[1].metric(
                "Sent",
                f"{f.sent:,}",
                help="Handed to the mail service. "
                + (
                    f"{f.uncertain:,} of them not confirmed: a worker stopped mid-send, so "
                    "they may have gone out twice."
                    if f.uncertain
                    else "All confirmed."
                ),
            )
            row[2].metric(
                "Delivered",
                f"{f.delivered:,}",
                delta="estimated" if f.delivered_estimated else None,
                delta_color="off",
                delta_arrow="off",
                help="This transport reports no deliveries, so this is an estimate: sent "
                "minus bounced."
                if f.delivered_estimated
                else "Accepted by the recipient's mail server.",
            )
            row[3].metric(
                "Unique opens",
                f"{f.unique_opens:,}",
                help=f"People who opened the email ({f.total_opens:,} opens in all).",
            )
            row[4].metric(
                "Unique clicks",
                f"{f.unique_clicks:,}",
                help=f"People who clicked a link ({f.total_clicks:,} clicks in all).",
            )
            row[5].metric(
                "Failed", f"{f.failed:,}", help="Could not be sent; the reason is in the table."
            )
            row = st.columns(6)
            row[0].metric("Total opens", f"{f.total_opens:,}", help="Every open, repeats too.")
            row[1].metric(
                "Automatic opens",
                f"{f.machine_opens:,}",
                help="Opens by mail prefetchers and image proxies (Apple Mail Privacy "
                "Protection, Gmail's image proxy, scanners): not people, not counted as opens.",
            )
            row[2].metric("Total clicks", f"{f.total_clicks:,}", help="Every click, repeats too.")
            row[3].metric(
                "Hard / soft bounces",
                f"{f.hard_bounces:,} / {f.soft_bounces:,}",
                help="Hard: the address does not exist (it is never mailed again). Soft: "
                "refused for now (full mailbox, server down).",
            )
            row[4].metric(
                "Spam complaints",
                f"{f.complaints:,}",
                help="Recipients who marked the email as spam (the address is never mailed again).",
            )
            row[5].metric("Unsubscribes", f"{f.unsubscribes:,}")
            rates = f.rates
            # A table that wraps: the explanations are sentences, not cells to scroll.
            st.table(
                [
                    {
                        "Rate": analytics.RATE_LABELS[name],
                        "Value": pct(rates[name]),
                        "Counted as": text,
                        "What it tells you": analytics.RATE_HELP[name],
                    }
                    for name, text in analytics.RATE_DEFINITIONS.items()
                ],
                hide_index=True,
                border="horizontal",
            )
            st.caption(
                "Opens and clicks are counted from "
                f"{TRACKING.get(f.tracking_source, f.tracking_source)} (Settings → Sending "
                "identity)."
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
    # A time-zone campaign's waves, live while it sends.
    st.fragment(run_every=5 if live else None)(waves_section)(campaign_id)
    resend_section(campaign_id, next(c.status for c in choices if c.id == campaign_id))

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
            st.dataframe(domains, hide_index=True, column_config=DOMAIN_COLUMNS)

    st.subheader("Recipients")
    cols = st.columns([3, 2, 1])
    search = cols[0].text_input("Search recipients", placeholder="part of an email address")
    status_filter = cols[1].selectbox(
        "Message status", ["all", "sent", "failed", "uncertain", "queued", "held", "cancelled"]
    )
    page_no = cols[2].number_input("Page", min_value=1, value=1, step=1)
    known = st.session_state.get("report_recipients")
    known = known if known and known[0] == campaign_id else None
    with db() as session, shows_errors():
        rows, total = analytics.recipients_page(
            session,
            me,
            campaign_id,
            search=search,
            status=None if status_filter == "all" else status_filter,
            limit=50,
            offset=(int(page_no) - 1) * 50,
            known_total=known[1] if known else None,
        )
        st.caption(
            f"{total:,} recipients match; showing page {page_no} of {max(1, -(-total // 50))}."
        )
        columns = dict(RECIPIENT_COLUMNS)
        if known and known[2]:
            columns["delivered"] = st.column_config.CheckboxColumn(
                "Delivered (estimated)",
                help="This transport reports no deliveries: sent and not bounced.",
            )
        shown = [{**r.__dict__, "sent_at": when(r.sent_at)} for r in rows]
        columns["sent_at"] = st.column_config.TextColumn(
            "Sent at", help=f"In your time zone ({zone_label()}); the CSV export is in UTC."
        )
        st.dataframe(shown, hide_index=True, column_config=columns)
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
            figures = analytics.compare_campaigns(session, me, picked)
            st.plotly_chart(charts.comparison(figures), key="compare")
            st.table(analytics.comparison_rows(figures), hide_index=True, border="horizontal")
            st.caption(
                "**Click-to-open rate**: of the people who opened, the share who also "
                "clicked. Rates: "
                + "; ".join(
                    f"{analytics.RATE_LABELS[key]} = {text}"
                    for key, text in analytics.RATE_DEFINITIONS.items()
                )
                + "."
            )
    else:
        st.caption("Pick two or more campaigns to see their figures side by side.")
