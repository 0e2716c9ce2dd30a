"""Plotly figures for reports and the dashboard: pure functions from data to figures."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.analytics.reports import (
    RATE_DEFINITIONS,
    RATE_LABELS,
    CampaignFigures,
    LinkClicks,
    TimelinePoint,
    rate,
)

COLORS = {
    "delivered": "#2e7d32",
    "bounced": "#c62828",
    "failed": "#6d4c41",
    "pending": "#9e9e9e",
    "not_reported": "#81c784",
    "cancelled": "#bdbdbd",
    "opens": "#1565c0",
    "clicks": "#ef6c00",
}


def _layout(fig: go.Figure, title: str, height: int = 340) -> go.Figure:
    fig.update_layout(
        title=title,
        height=height,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        # Above the plot, right: never on top of the x axis title.
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1},
    )
    # Axis titles and tick labels get the room they need instead of being cut.
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    return fig


def outcome_split(f: CampaignFigures) -> go.Figure:
    """Where the messages ended up, every recipient once: delivered, bounced, sent without
    a report yet, failed, cancelled, not sent yet. Empty parts are left out (no "0%"
    labels on top of each other); the legend names what is drawn, with the counts."""
    delivered = "Delivered (estimated)" if f.delivered_estimated else "Delivered"
    parts = [
        (delivered, f.delivered, "delivered"),
        ("Bounced", f.bounces, "bounced"),
        ("Sent, no delivery report yet", f.not_reported, "not_reported"),
        ("Failed", f.failed, "failed"),
        ("Cancelled", f.cancelled, "cancelled"),
        ("Not sent yet", f.queued, "pending"),
    ]
    shown = [(label, n, COLORS[color]) for label, n, color in parts if n > 0]
    fig = go.Figure(
        go.Pie(
            labels=[f"{label}: {n:,}" for label, n, _ in shown],
            values=[n for _, n, _ in shown],
            hole=0.55,
            marker={"colors": [color for _, _, color in shown]},
            sort=False,
            direction="clockwise",
            textinfo="percent",
            textposition="inside",
            insidetextorientation="horizontal",
            hovertemplate="%{label} recipients (%{percent})<extra></extra>",
        )
    )
    fig.update_layout(
        annotations=[
            {
                "text": f"{f.recipients:,}<br>recipients",
                "showarrow": False,
                "font": {"size": 14},
            }
        ],
        uniformtext={"minsize": 11, "mode": "hide"},  # a sliver's label is hidden, not piled
    )
    fig = _layout(fig, "Outcome (share of recipients)")
    fig.update_layout(
        legend={"orientation": "h", "yanchor": "top", "y": -0.02, "xanchor": "center", "x": 0.5}
    )
    return fig


def funnel(f: CampaignFigures) -> go.Figure:
    """People at each step, each step's share of those sent: horizontal bars on a
    recipients axis (a plotly funnel has no axis a reader could use)."""
    delivered = "Delivered (est.)" if f.delivered_estimated else "Delivered"
    steps = ["Sent", delivered, "Opened", "Clicked"]
    values = [f.sent, f.delivered, f.unique_opens, f.unique_clicks]
    colors = [COLORS["pending"], COLORS["delivered"], COLORS["opens"], COLORS["clicks"]]
    shares = [rate(v, f.sent) for v in values]
    fig = go.Figure(
        go.Bar(
            y=steps[::-1],
            x=values[::-1],
            orientation="h",
            marker_color=colors[::-1],
            text=[
                f"{v:,}" + ("" if s is None else f" ({s:.0%} of sent)")
                for v, s in zip(values[::-1], shares[::-1], strict=True)
            ],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: %{x:,} recipients<extra></extra>",
        )
    )
    fig.update_layout(xaxis_title="Recipients (unique people)", yaxis_title="Step")
    fig.update_xaxes(range=[0, max(values + [1]) * 1.45], rangemode="tozero")
    return _layout(fig, "Funnel (unique recipients)")


def timeline(points: Sequence[TimelinePoint]) -> go.Figure:
    """Opens and clicks per hour (first 48 hours) and per day after, each bar as wide as
    its period, so a single hour does not fill the chart."""
    hour, day = 3_600_000, 86_400_000  # milliseconds, plotly's unit on a date axis
    x = [p.start for p in points]
    period = [hour if p.granularity == "hour" else day for p in points]
    width = [0.4 * ms for ms in period]
    fig = go.Figure()
    fig.add_bar(
        x=x,
        y=[p.opens for p in points],
        width=width,
        offset=[0.1 * ms for ms in period],
        name="Opens",
        marker_color=COLORS["opens"],
        customdata=[p.granularity for p in points],
        hovertemplate="%{x|%b %d, %H:%M} UTC (per %{customdata}): %{y:,} opens<extra></extra>",
    )
    fig.add_bar(
        x=x,
        y=[p.clicks for p in points],
        width=width,
        offset=[0.5 * ms for ms in period],
        name="Clicks",
        marker_color=COLORS["clicks"],
        customdata=[p.granularity for p in points],
        hovertemplate="%{x|%b %d, %H:%M} UTC (per %{customdata}): %{y:,} clicks<extra></extra>",
    )
    if points:
        first, last = min(x), max(x)
        pad = timedelta(milliseconds=max(period))
        fig.update_xaxes(range=[first - pad, last + 2 * pad])
    fig.update_layout(
        barmode="overlay",
        xaxis_title="Time (UTC): per hour for the first 48 hours, then per day",
        yaxis_title="Opens and clicks (count)",
    )
    return _layout(fig, "Opens and clicks over time")


def _short(url: str, limit: int = 60) -> str:
    return url if len(url) <= limit else url[: limit - 1] + "…"


def top_links(links: Sequence[LinkClicks]) -> go.Figure:
    ordered = list(reversed(links))
    fig = go.Figure(
        go.Bar(
            y=[_short(link.url) for link in ordered],
            x=[link.unique_clicks for link in ordered],
            orientation="h",
            marker_color=COLORS["clicks"],
            customdata=[[link.url, link.total_clicks] for link in ordered],
            hovertemplate="%{customdata[0]}<br>%{x:,} people clicked, %{customdata[1]:,} "
            "clicks in all<extra></extra>",
        )
    )
    fig.update_layout(xaxis_title="People who clicked (unique)", yaxis_title="Link")
    return _layout(fig, "Top links", height=max(260, 40 * len(links) + 120))


def contact_growth(rows: Sequence[dict[str, Any]]) -> go.Figure:
    """New contacts per day (bars) and the cumulative total (line)."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    days = [r["day"] for r in rows]
    fig.add_bar(x=days, y=[r["new_contacts"] for r in rows], name="New contacts per day")
    fig.add_scatter(
        x=days,
        y=[r["cumulative_contacts"] for r in rows],
        name="Contacts in all",
        mode="lines",
        secondary_y=True,
    )
    fig.update_xaxes(title_text="Day (UTC)")
    fig.update_yaxes(title_text="New contacts (per day)", secondary_y=False)
    fig.update_yaxes(title_text="Contacts in all", secondary_y=True)
    return _layout(fig, "Contact growth (90 days)")


def comparison(figures: Sequence[CampaignFigures]) -> go.Figure:
    """Rates of several campaigns side by side, named as in the report."""
    fig = go.Figure()
    for f in figures:
        rates = f.rates
        fig.add_bar(
            x=list(RATE_LABELS.values()),
            y=[(rates[key] or 0) * 100 for key in RATE_LABELS],
            name=f.name,
            text=["–" if rates[key] is None else f"{rates[key]:.1%}" for key in RATE_LABELS],
            textposition="outside",
            customdata=[RATE_DEFINITIONS[key] for key in RATE_LABELS],
            hovertemplate="%{x}: %{y:.1f} %<br>%{customdata}<extra>%{fullData.name}</extra>",
        )
    fig.update_layout(barmode="group", xaxis_title="Rate", yaxis_title="Percent (%)")
    return _layout(fig, "Rates compared", height=380)


def sends_per_day(points: Sequence[Any], labels: dict[str, str]) -> go.Figure:
    """An automation's mails per day, stacked by step (`labels`: step path → its name).

    Plotly reads tags (<a href>, <b>) in trace names: user text is escaped first."""
    fig = go.Figure()
    for path, name in labels.items():
        label = html.escape(name)
        mine = [p for p in points if p.path == path]
        if not mine:
            continue
        fig.add_bar(
            x=[p.day for p in mine],
            y=[p.sent for p in mine],
            name=label,
            hovertemplate="%{x|%Y-%m-%d}: %{y:,} sent<extra>"
            + label.replace("%", "%%")
            + "</extra>",
        )
    fig.update_layout(barmode="stack", xaxis_title="Day (UTC)", yaxis_title="Emails sent")
    fig.update_xaxes(tickformat="%b %d")
    return _layout(fig, "Emails sent per day, by step")
