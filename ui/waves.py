"""Time-zone waves on screen: a campaign's waves with their progress (report, campaign list)
and the wizard review's sentence about who falls in how many zones."""

from __future__ import annotations

import streamlit as st

from core.campaigns import service as campaigns
from core.campaigns import waves
from core.models.statuses import CampaignStatus
from ui.format import when
from ui.state import actor, read_db

WAVE_COLUMNS = {
    "Wave": st.column_config.NumberColumn("Wave", width=60),
    "Due (UTC)": st.column_config.TextColumn("Due (UTC)", width=125),
    "Local time": st.column_config.TextColumn("Local time there", width=105),
    "Your time": st.column_config.TextColumn("Your time", width=140),
    "Zones": st.column_config.TextColumn("Zones", width=180),
    "Recipients": st.column_config.NumberColumn("Recipients", format="localized"),
    "Sent": st.column_config.NumberColumn("Sent", format="localized"),
    "Pending": st.column_config.NumberColumn("Pending", format="localized"),
    "Progress": st.column_config.ProgressColumn(min_value=0, max_value=1, width=110),
}


def wave_rows(found: list[waves.Wave]) -> list[dict]:
    """One row per wave, as the table shows it."""
    return [
        {
            "Wave": number,
            "Due (UTC)": f"{wave.due_at:%Y-%m-%d %H:%M}",
            "Local time": wave.local(wave.zones[0]) if wave.zones else "",
            "Your time": when(wave.due_at),
            "Zones": ", ".join(wave.zones),
            "Recipients": wave.count,
            "Sent": wave.sent,
            "Pending": wave.pending,
            "Progress": (wave.count - wave.pending) / wave.count if wave.count else 0.0,
        }
        for number, wave in enumerate(found, start=1)
    ]


def waves_section(campaign_id: int) -> None:
    """The waves of a time-zone campaign, one row each (nothing for any other campaign)."""
    with read_db() as session:
        found = waves.campaign_waves(session, actor(), campaign_id)
        paused = (
            campaigns.get_campaign(session, actor(), campaign_id).status == CampaignStatus.PAUSED
        )
    if not found:
        return
    st.markdown(f"**Time-zone waves**: {waves.waves_summary(found, paused=paused)}")
    st.dataframe(wave_rows(found), column_config=WAVE_COLUMNS, hide_index=True, width="stretch")
    st.caption(
        "Each contact gets the campaign at the chosen time in their own zone (the "
        "workspace's zone when they have none); zones that reach it at the same moment are "
        "one wave."
    )


def plan_sentence(plan: waves.WavePlan) -> str:
    """ "1,204 contacts in 7 zones: first wave … last …" for the review step."""
    if not plan.waves or plan.first is None or plan.last is None:
        return "Nobody to send to yet."
    first, last = plan.first, plan.last
    zones = f"{plan.zones} time zone{'s' if plan.zones != 1 else ''}"
    text = (
        f"{plan.recipients:,} contact{'s' if plan.recipients != 1 else ''} in {zones}, "
        f"{len(plan.waves)} wave{'s' if len(plan.waves) != 1 else ''}: the first goes "
        f"{when(first.due_at)} ({first.label})"
    )
    if len(plan.waves) > 1:
        text += f", the last {when(last.due_at)} ({last.label})"
    return text + "."
