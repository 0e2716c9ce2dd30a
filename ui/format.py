"""Figures, moments and statuses as a marketer reads them: thousands separators, times in
the viewer's own time zone with the zone named, and statuses as coloured badges."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import streamlit as st

from core.models.statuses import AutomationStatus, CampaignStatus

# One colour per campaign status, for badges in tables (st.column_config.MultiselectColumn)
# and in text (st.badge).
STATUS_COLOURS: dict[str, str] = {
    CampaignStatus.DRAFT: "gray",
    CampaignStatus.SCHEDULED: "violet",
    CampaignStatus.SENDING: "blue",
    CampaignStatus.PAUSED: "orange",
    CampaignStatus.SENT: "green",
    CampaignStatus.FAILED: "red",
    CampaignStatus.CANCELLED: "gray",
}

# And one per automation status.
AUTOMATION_COLOURS: dict[str, str] = {
    AutomationStatus.DRAFT: "gray",
    AutomationStatus.ACTIVE: "green",
    AutomationStatus.PAUSED: "orange",
}


def zone() -> tzinfo:
    """The viewer's time zone, as the browser reports it (UTC when it does not say)."""
    name = st.context.timezone
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return UTC


def zone_label() -> str:
    """The viewer's zone by name, for a caption: "Europe/Paris"."""
    return str(zone())


def when(moment: datetime | None) -> str:
    """`moment` in the viewer's zone with the zone shown: "2026-12-20 09:00 CET"."""
    if moment is None:
        return ""
    if moment.tzinfo is None:  # stored naive on SQLite: always UTC
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(zone())
    return f"{local:%Y-%m-%d %H:%M} {local.tzname() or 'UTC'}"


def status_column(label: str = "Status", colours: dict[str, str] | None = None) -> dict:
    """A dataframe column that shows a status (a one-item list) as a badge; campaign
    statuses unless other `colours` are given."""
    colours = colours or STATUS_COLOURS
    options = list(colours)
    return st.column_config.MultiselectColumn(
        label, options=options, color=[colours[s] for s in options], width=105
    )


def count_column(label: str, help: str | None = None) -> dict:
    """A right-aligned whole-number column with the viewer's thousands separators."""
    return st.column_config.NumberColumn(label, format="localized", help=help)
