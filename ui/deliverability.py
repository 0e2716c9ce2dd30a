"""The deliverability guard on screen: the banner on every page, the limits in Settings,
the pause on a campaign's report, the workspace's standing in the campaign review."""

from __future__ import annotations

import streamlit as st

from core import deliverability
from core.campaigns.service import get_campaign
from core.infra.permissions import Actor
from ui.actions import act
from ui.format import when
from ui.state import read_db
from ui.text import md


def guard_banner(me: Actor) -> None:
    """Owners and admins: every pause nobody has looked at yet, above every page."""
    if not me.can("admin"):
        return
    with read_db() as session:
        alerts = deliverability.open_alerts(session, me)
    for alert in alerts:
        with st.container(border=True, key=f"guard_alert_{alert.campaign_id}"):
            text, look, seen = st.columns([6, 1, 1], vertical_alignment="center")
            text.error(
                f"**“{md(alert.campaign_name)}”** {md(alert.reason)} ({when(alert.paused_at)}).",
                icon=":material/front_hand:",
            )
            if look.button("Open report", key=f"guard_look_{alert.campaign_id}"):
                # Opening it is looking: the banner goes, the report shows the reason.
                act(
                    lambda s, c=alert.campaign_id: deliverability.acknowledge(s, me, c),
                    rerun=False,
                )
                st.session_state["report_campaign_id"] = alert.campaign_id
                st.switch_page("pages/reports.py")
            if seen.button("Seen", key=f"guard_seen_{alert.campaign_id}"):
                act(
                    lambda s, c=alert.campaign_id: deliverability.acknowledge(s, me, c),
                    "The guard's notice is marked as seen for everyone.",
                )


def guard_settings(me: Actor) -> None:
    """The workspace's limits, in percent (owners and admins change them)."""
    with read_db() as session:
        limits = deliverability.get_limits(session, me)
    st.caption(
        "While a campaign sends, once at least "
        f"{deliverability.GUARD_MIN_FEEDBACK} of its messages have SES feedback (delivered, "
        "bounced or complained), the guard pauses it when its hard bounces or complaints pass "
        "these limits. SES reviews an account at 5 % bounces or 0.1 % complaints."
    )
    if not me.can("admin"):
        st.caption("Only owners and admins change these.")
    with st.form("guard_limits"):
        bounce = st.number_input(
            "Pause at hard bounces above (%)",
            min_value=0.1,
            max_value=deliverability.SES_BOUNCE_PAUSE * 100,
            value=limits.bounce * 100,
            step=0.5,
            format="%.2f",
        )
        complaint = st.number_input(
            "Pause at complaints above (%)",
            min_value=0.01,
            max_value=deliverability.SES_COMPLAINT_PAUSE * 100,
            value=limits.complaint * 100,
            step=0.01,
            format="%.2f",
        )
        saved = st.form_submit_button("Save limits", disabled=not me.can("admin"))
    if saved:
        act(
            lambda s: deliverability.update_limits(
                s, me, deliverability.GuardLimits(bounce / 100, complaint / 100)
            ),
            f"The guard pauses at {bounce:g} % hard bounces or {complaint:g} % complaints.",
        )


def guard_report_notice(me: Actor, campaign_id: int) -> None:
    """On a campaign's report: the guard's pause (and overrides); an owner or admin who
    sees it acknowledges it, which ends the banner."""
    with read_db() as session:
        row = deliverability.guard_of(session, me, campaign_id)
        if row is None:
            return
        paused_at, reason, overrides = row.paused_at, row.reason, row.overrides
        unseen = row.acknowledged_at is None and paused_at is not None
        sent_past = row.send_override_at
        last = (deliverability.overridden_by(session, row), row.overridden_at)
        holding = deliverability.pending_override(session, get_campaign(session, me, campaign_id))
    if holding is not None:
        st.error(
            f"{md(reason)} ({when(paused_at)}). Resume it on the Campaigns page: that overrides "
            "the guard, with your name.",
            icon=":material/front_hand:",
        )
    elif paused_at is not None:
        st.caption(f"{md(reason)} ({when(paused_at)}).")
    if overrides:
        st.caption(
            f"The deliverability guard was overridden {overrides} "
            f"time{'s' if overrides > 1 else ''}, last by {md(last[0])} ({when(last[1])})."
        )
    if sent_past is not None:
        st.caption(
            f"Sent by an owner's override of the workspace's 30-day rates ({when(sent_past)})."
        )
    if unseen and me.can("admin"):
        act(lambda s: deliverability.acknowledge(s, me, campaign_id), rerun=False)


def standing_warning(me: Actor) -> str:
    """The workspace's last 30 days in the campaign review: "ok", "close" or "over" (shown)."""
    with read_db() as session:
        standing = deliverability.workspace_standing(session, me)
    if standing.level == "close":
        st.warning(
            f"{standing.summary} You are close to a review level: check this audience's "
            "quality before sending.",
            icon=":material/warning:",
        )
    elif standing.level == "over":
        st.error(
            f"{standing.summary} The workspace is at or above a review level: only an owner "
            "can send now, overriding the guard (recorded).",
            icon=":material/front_hand:",
        )
    return standing.level
