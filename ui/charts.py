"""Plotly figures for reports and the dashboard: pure functions from data to figures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.analytics.reports import CampaignFigures, LinkClicks, TimelinePoint

COLORS = {
    "delivered": "#2e7d32",
    "bounced": "#c62828",
    "failed": "#6d4c41",
    "pending": "#9e9e9e",
    "opens": "#1565c0",
    "clicks": "#ef6c00",
}


def _layout(fig: go.Figure, title: str, height: int = 320) -> go.Figure:
    fig.update_layout(
        title=title,
        height=height,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "y": -0.15},
    )
    return fig


def outcome_split(f: CampaignFigures) -> go.Figure:
    """Where the messages ended up: delivered, bounced, failed, not sent yet."""
    labels = ["Delivered", "Bounced", "Failed", "Not sent yet"]
    values = [f.delivered, f.bounces, f.failed, f.queued]
    colors = [COLORS[k] for k in ("delivered", "bounced", "failed", "pending")]
    fig = go.Figure(
        go.Pie(labels=labels, values=values, hole=0.5, marker={"colors": colors}, sort=False)
    )
    return _layout(fig, "Outcome")


def funnel(f: CampaignFigures) -> go.Figure:
    fig = go.Figure(
        go.Funnel(
            y=["Sent", "Delivered", "Opened", "Clicked"],
            x=[f.sent, f.delivered, f.unique_opens, f.unique_clicks],
            textinfo="value+percent initial",
        )
    )
    return _layout(fig, "Funnel (unique recipients)")


def timeline(points: Sequence[TimelinePoint]) -> go.Figure:
    """Opens and clicks per hour (first 48 hours) and per day after."""
    x = [p.start for p in points]
    fig = go.Figure()
    fig.add_bar(x=x, y=[p.opens for p in points], name="Opens", marker_color=COLORS["opens"])
    fig.add_bar(x=x, y=[p.clicks for p in points], name="Clicks", marker_color=COLORS["clicks"])
    fig.update_layout(barmode="group", xaxis_title="UTC (hourly for 48 h, then daily)")
    return _layout(fig, "Opens and clicks over time")


def top_links(links: Sequence[LinkClicks]) -> go.Figure:
    ordered = list(reversed(links))
    fig = go.Figure(
        go.Bar(
            y=[link.url for link in ordered],
            x=[link.unique_clicks for link in ordered],
            orientation="h",
            marker_color=COLORS["clicks"],
            customdata=[link.total_clicks for link in ordered],
            hovertemplate="%{y}<br>unique %{x}, total %{customdata}<extra></extra>",
        )
    )
    fig.update_layout(xaxis_title="unique clicks")
    return _layout(fig, "Top links", height=max(240, 40 * len(links) + 80))


def contact_growth(rows: Sequence[dict[str, Any]]) -> go.Figure:
    """New contacts per day (bars) and the cumulative total (line)."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    days = [r["day"] for r in rows]
    fig.add_bar(x=days, y=[r["new_contacts"] for r in rows], name="New per day")
    fig.add_scatter(
        x=days,
        y=[r["cumulative_contacts"] for r in rows],
        name="Total",
        mode="lines",
        secondary_y=True,
    )
    return _layout(fig, "Contact growth (90 days)")


def comparison(rows: Sequence[dict[str, Any]]) -> go.Figure:
    """Rates of several campaigns side by side."""
    metrics = [("open_rate", "Open"), ("click_rate", "Click"), ("click_to_open_rate", "CTO")]
    metrics += [("bounce_rate", "Bounce"), ("unsubscribe_rate", "Unsubscribe")]
    fig = go.Figure()
    for row in rows:
        fig.add_bar(
            x=[label for _, label in metrics],
            y=[(row[key] or 0) * 100 for key, _ in metrics],
            name=row["name"],
        )
    fig.update_layout(barmode="group", yaxis_title="%")
    return _layout(fig, "Rates compared")
