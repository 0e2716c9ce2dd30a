"""Settings → Inactive contacts: the sunset policy (core.contacts.sunset)."""

from __future__ import annotations

import streamlit as st

from core.contacts import sunset
from ui.format import when
from ui.state import actor, db, read_db, shows_errors

EXPLAIN = (
    "Mail nobody reads hurts the reputation every campaign spends: mailbox providers watch "
    "how many recipients engage. Inactive contacts are left out of campaigns unless a "
    "campaign's Recipients step includes them; the segment “{segment}” lists them for a "
    "re-engagement campaign (which includes them). A human open or click makes a contact "
    "active again as soon as it arrives; machine opens (image proxies, scanners) do not "
    "count. The list is recomputed every day, and when you save here."
)


def sunset_settings() -> None:
    me = actor()
    with read_db() as session:
        policy = sunset.get_policy(session, me)
        inactive = sunset.count_inactive(session, me)
    st.subheader("Sunset policy")
    st.caption(EXPLAIN.format(segment=sunset.SEGMENT_NAME))
    left, right = st.columns(2)
    left.metric("Inactive contacts now", f"{inactive:,}")
    right.metric(
        "Last computed", when(policy.computed_at) or "not yet", help="Beat recomputes daily."
    )
    st.markdown(policy.sentence())
    if not me.can("admin"):
        st.caption("Only owners and admins change the policy.")
    with st.form("sunset_policy"):
        enabled = st.toggle("Leave inactive contacts out of campaigns", policy.enabled)
        cols = st.columns(2)
        campaigns = cols[0].number_input(
            "Campaigns received without a human open or a click",
            min_value=1,
            max_value=1000,
            value=policy.min_campaigns,
            step=1,
        )
        days = cols[1].number_input(
            "Over at least (days)", min_value=1, max_value=3650, value=policy.min_days, step=1
        )
        saved = st.form_submit_button("Save and recompute", disabled=not me.can("admin"))
    if saved:
        done = None
        with shows_errors(), db() as session:
            sunset.save_policy(
                session, me, enabled=enabled, min_campaigns=int(campaigns), min_days=int(days)
            )
            done = sunset.recompute(session, me.workspace_id)
        if done is not None:
            st.success(f"Saved: {done['inactive']:,} contacts are inactive now.")
