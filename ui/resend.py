"""Resend to non-openers: the form (campaign list and report) and the combined reach of a
campaign and its resends (report)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import streamlit as st

from core.analytics.reports.reach import combined_reach
from core.campaigns import resend
from core.content import ai
from core.models.statuses import Action, allowed
from ui.actions import act, flash
from ui.campaign_wizard import ZONES, open_wizard
from ui.state import actor, db, read_db, shows_errors
from ui.text import md

EXPLAIN = (
    "People who received it (sent, not bounced) and neither opened it (machine opens by "
    "image proxies and scanners do not count) nor clicked, minus anyone unsubscribed or "
    "suppressed since. The list is drawn when the resend starts, so whoever opens the first "
    "mail in the meantime is left out too."
)


def _pick(key: str, subject: str) -> None:
    st.session_state[key] = subject


def resend_form(campaign_id: int, key: str) -> None:
    """Subject (with AI suggestions when configured), time, and create: as a draft to review
    in the wizard, or scheduled at once."""
    me = actor()
    plan = None
    with shows_errors(), read_db() as session:
        plan = resend.plan_resend(session, me, campaign_id)
    if plan is None:
        return
    with st.container(border=True):
        st.markdown(f"**Resend “{md(plan.parent_name)}” to its non-openers**")
        st.metric("Would receive it now", f"{plan.non_openers:,}")
        st.caption(EXPLAIN)
        if plan.inactive_left_out:
            st.caption(
                f"{plan.inactive_left_out:,} of them are inactive by the sunset policy "
                "(Settings) and are left out; tick “Include inactive contacts” in the wizard's "
                "Recipients step to include them."
            )
        subject_key = f"{key}_subject"
        st.session_state.setdefault(subject_key, plan.subject)
        subject = st.text_input("New subject", key=subject_key)
        if ai.is_configured():
            if st.button("Suggest subjects (AI)", key=f"{key}_suggest"):
                with shows_errors(), db() as session:
                    st.session_state[f"{key}_ideas"] = resend.suggest_subjects(
                        session, me, campaign_id
                    )
            for i, idea in enumerate(st.session_state.get(f"{key}_ideas", [])):
                st.button(
                    f"Use: {idea}",
                    key=f"{key}_idea_{i}",
                    on_click=_pick,
                    args=(subject_key, idea),
                )
        else:
            st.caption("Subject suggestions need the AI assistant (OPENAI_API_KEY in .env).")
        zone_name = st.session_state.get("mw_timezone") or st.context.timezone or "UTC"
        if zone_name not in ZONES:
            zone_name = "UTC"
        local = plan.proposed_at.astimezone(ZoneInfo(zone_name))
        cols = st.columns(3)
        day = cols[0].date_input("Date", local.date(), key=f"{key}_day")
        at = cols[1].time_input(
            "Time", local.time().replace(second=0, microsecond=0), key=f"{key}_time",
            step=timedelta(minutes=5),
        )  # fmt: skip
        zone = cols[2].selectbox("Time zone", ZONES, index=ZONES.index(zone_name), key=f"{key}_tz")
        when = datetime.combine(day, at, ZoneInfo(zone))
        first = plan.first_sent_at.astimezone(ZoneInfo(zone)) if plan.first_sent_at else None
        st.caption(
            "Proposed: 48 hours after the first send"
            + (f" ({first:%Y-%m-%d %H:%M} {zone})" if first else "")
            + ", or in a few minutes when that has passed."
        )
        left, right, close = st.columns([2, 2, 1])
        if left.button("Create and schedule", type="primary", key=f"{key}_schedule"):
            created = act(
                lambda s: resend.create_resend(s, me, campaign_id, subject, when, schedule=True),
                lambda c: f"“{c.name}” is scheduled for {when:%Y-%m-%d %H:%M} {zone}.",
                rerun=False,
            )
            if created is not None:
                _forget(key)
                st.rerun()
        if right.button("Create a draft to review", key=f"{key}_draft"):
            created = act(
                lambda s: resend.create_resend(s, me, campaign_id, subject, when),
                rerun=False,
            )
            if created is not None:
                _forget(key)
                open_wizard(created.id, step=3)
                flash(f"“{created.name}” is a draft: review it, then send or schedule it.")
                st.switch_page("pages/campaigns.py")
        if close.button("Close", key=f"{key}_close"):
            _forget(key)
            st.rerun()


def _forget(key: str) -> None:
    for name in list(st.session_state):
        if isinstance(name, str) and name.startswith(key):
            st.session_state.pop(name, None)


def resend_section(campaign_id: int, status: str) -> None:
    """On a report: the combined reach of the campaign and its resends, and the action."""
    me = actor()
    with read_db() as session:
        reach = combined_reach(session, me, campaign_id)
    if reach is not None:
        st.subheader("Combined reach with resends")
        cols = st.columns(3)
        cols[0].metric("People reached", f"{reach.recipients:,}", help="Received any of them.")
        cols[1].metric(
            "People who opened",
            f"{reach.opened:,}",
            help="Opened any of them (human opens), each person once.",
        )
        cols[2].metric("People who clicked", f"{reach.clicked:,}")
        st.dataframe(
            [
                {
                    "Campaign": p.name,
                    "Kind": "Resend" if p.is_resend else "First send",
                    "Status": p.status,
                    "Recipients": p.recipients,
                    "Opened": p.opened,
                    "Clicked": p.clicked,
                }
                for p in reach.parts
            ],
            hide_index=True,
        )
        st.caption(
            "People, not messages: someone who received both counts once, and so does "
            "someone who opened either."
        )
    verdict = allowed(Action.RESEND, status)
    key = f"resend_{campaign_id}"
    if st.button(
        Action.RESEND.value,
        key=f"{key}_open",
        disabled=not verdict or not me.can("edit"),
        help=verdict.reason or None,
    ):
        st.session_state[f"{key}_shown"] = True
    if st.session_state.get(f"{key}_shown"):
        resend_form(campaign_id, key)
