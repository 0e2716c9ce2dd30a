"""The Reports page's automation report: enrollments, per step the campaign-style figures,
and a chart of mails sent per day by step."""

from __future__ import annotations

import streamlit as st

from core import automations as au
from core.infra.permissions import Actor
from ui import charts
from ui.state import read_db, shows_errors
from ui.text import md


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def automation_report_section(me: Actor) -> None:
    with read_db() as session:
        rows = [r for r in au.list_automations(session, me) if r.status != "draft"]
    if not rows:
        st.info("No automation has run yet. Its report appears here once it is activated.")
        return
    labels = {r.id: f"{r.name} · {r.status}" for r in rows}
    asked = st.session_state.pop("report_automation", None)
    if asked in labels:
        st.session_state["report_automation_pick"] = asked
    automation_id = st.selectbox(
        "Automation", list(labels), format_func=labels.get, key="report_automation_pick"
    )
    with read_db() as session, shows_errors():
        report = au.automation_report(session, me, automation_id)
        top = st.columns(4)
        top[0].metric("Enrolled", f"{report.enrolled:,}", help="Contacts who entered, ever.")
        top[1].metric("In it now", f"{report.active:,}", help="Waiting or due at a step.")
        top[2].metric("Finished", f"{report.finished:,}", help="Walked off the last step.")
        top[3].metric(
            "Left early",
            f"{report.exited:,}",
            help="An exit step, or they unsubscribed, bounced or complained.",
        )
        if report.exits:
            st.caption(
                "Left early: "
                + ", ".join(f"{md(reason)} {n:,}" for reason, n in sorted(report.exits.items()))
            )
        sends = [f for f in report.steps if f.kind == "send"]
        st.table(
            [
                {
                    "Step": au.human_path(f.path),
                    "What": md(f.summary),  # st.table renders Markdown
                    "Waiting": f"{f.waiting:,}",
                    "Sent": f"{f.sent:,}",
                    "Delivered": f"{f.delivered:,}" + (" (est.)" if f.delivered_estimated else ""),
                    "Open rate": pct(f.rates["open_rate"]),
                    "Click rate": pct(f.rates["click_rate"]),
                    "Click-to-open": pct(f.rates["click_to_open_rate"]),
                    "Bounce rate": pct(f.rates["bounce_rate"]),
                    "Unsubscribe rate": pct(f.rates["unsubscribe_rate"]),
                    "Failed": f"{f.failed:,}",
                }
                for f in sends
            ],
            hide_index=True,
            border="horizontal",
        )
        st.caption(
            "Rates as for campaigns: opens by people (not image proxies) and clicks ÷ "
            "delivered; bounces ÷ sent. Delivered is sent minus bounced where the transport "
            "reports no deliveries (est.)."
        )
        others = [f for f in report.steps if f.kind != "send" and f.waiting]
        if others:
            st.caption(
                "Waiting at other steps: "
                + "; ".join(
                    f"{au.human_path(f.path)} {md(f.summary)}: {f.waiting:,}" for f in others
                )
            )
        if report.per_day:
            names = {f.path: f"{au.human_path(f.path)} {f.summary}" for f in sends}
            st.plotly_chart(charts.sends_per_day(report.per_day, names), key="au_per_day")
        else:
            st.caption("Nothing sent in the last 30 days.")
