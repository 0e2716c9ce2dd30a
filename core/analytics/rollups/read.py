"""Reading the rollups: the dashboard's trends, their status, a campaign's snapshot and
domains."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from core.analytics.rollups.base import RollupsMissing, rollup_path


@contextmanager
def open_rollups(path: Path | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only view of the rollup file as schema `r` (an in-memory DuckDB with it attached).

    Attaching, rather than `duckdb.connect(path)`, avoids DuckDB's per-process instance
    cache, which would keep serving the old file after a swap while any connection is open.
    """
    path = rollup_path(path)
    if not path.exists():
        raise RollupsMissing("The rollups have not been built yet (python -m core rollup).")
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"ATTACH '{path}' AS r (READ_ONLY)")
        yield con
    finally:
        con.close()


def dashboard_trends(
    workspace_id: int,
    now: datetime,
    path: Path | None = None,
    last_campaigns: int = 10,
) -> dict[str, Any]:
    """The dashboard's trend figures for one workspace; {} when no rollups exist yet."""
    try:
        ctx = open_rollups(path)
        con = ctx.__enter__()
    except RollupsMissing:
        return {}
    try:
        today = now.astimezone(UTC).date()
        d30, d90 = today - timedelta(days=29), today - timedelta(days=89)
        ws = [workspace_id]
        built_at = con.execute("SELECT built_at FROM r.rollup_info").fetchall()[0][0]
        sent_all, sent_30, bounces_30, complaints_30 = con.execute(
            "SELECT coalesce(sum(sent), 0), coalesce(sum(sent) FILTER (WHERE day >= ?), 0), "
            "coalesce(sum(bounces) FILTER (WHERE day >= ?), 0), "
            "coalesce(sum(complaints) FILTER (WHERE day >= ?), 0) "
            "FROM r.workspace_daily WHERE workspace_id = ?",
            [d30, d30, d30, workspace_id],
        ).fetchall()[0]
        added, lost = con.execute(
            "SELECT coalesce(sum(new_contacts), 0), coalesce(sum(lost_contacts), 0) "
            "FROM r.contact_growth_daily WHERE workspace_id = ? AND day >= ?",
            [workspace_id, d30],
        ).fetchall()[0]
        avg_open, avg_click, n = con.execute(
            "SELECT avg(open_rate), avg(click_rate), count(*) FROM ("
            " SELECT open_rate, click_rate FROM r.campaigns"
            " WHERE workspace_id = ? AND delivered > 0 AND status IN ('sent', 'sending')"
            " ORDER BY started_at DESC NULLS LAST LIMIT ?)",
            [workspace_id, last_campaigns],
        ).fetchall()[0]
        growth = con.execute(
            "SELECT day, new_contacts, lost_contacts, cumulative_contacts "
            "FROM r.contact_growth_daily WHERE workspace_id = ? AND day >= ? ORDER BY day",
            ws + [d90],
        ).fetchall()
    finally:
        ctx.__exit__(None, None, None)
    return {
        "built_at": built_at.replace(tzinfo=UTC),
        "sent_all_time": int(sent_all),
        "sent_30d": int(sent_30),
        "bounces_30d": int(bounces_30),
        "complaints_30d": int(complaints_30),
        "subscribed_change_30d": int(added) - int(lost),
        "avg_open_rate": avg_open,
        "avg_click_rate": avg_click,
        "rate_campaigns": int(n),
        "growth": [
            {"day": d, "new_contacts": a, "lost_contacts": lo, "cumulative_contacts": c}
            for d, a, lo, c in growth
        ],
    }


def rollup_status(path: Path | None = None) -> dict[str, Any] | None:
    """When the file was built and its size, or None when it does not exist."""
    try:
        with open_rollups(path) as con:
            built_at, through, events = con.execute(
                "SELECT built_at, events_through_id, events FROM r.rollup_info"
            ).fetchall()[0]
    except RollupsMissing:
        return None
    p = rollup_path(path)
    return {
        "built_at": built_at.replace(tzinfo=UTC),
        "events_through_id": through,
        "events": events,
        "path": str(p.resolve()),
        "bytes": p.stat().st_size,
    }


def campaign_domains(
    workspace_id: int, campaign_id: int, path: Path | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """Per recipient domain figures of one campaign from the rollups ([] before the first)."""
    try:
        with open_rollups(path) as con:
            cursor = con.execute(
                "SELECT domain, recipients, sent, delivered, bounces, complaints, unique_opens, "
                "unique_clicks, unique_opens / nullif(delivered, 0) AS open_rate, "
                "bounces / nullif(sent, 0) AS bounce_rate FROM r.campaign_domains "
                "WHERE workspace_id = ? AND campaign_id = ? ORDER BY recipients DESC LIMIT ?",
                [workspace_id, campaign_id, limit],
            )
            columns = [d[0] for d in cursor.description]
            return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    except RollupsMissing:
        return []


@dataclass
class CampaignSnapshot:
    """A campaign's event counts in the rollups, up to event id `through` (inclusive)."""

    through: int
    delivered_events: int
    unique_opens: int
    total_opens: int
    machine_opens: int
    unique_clicks: int
    total_clicks: int
    hours: dict[datetime, tuple[int, int]]  # UTC hour -> (opens, clicks)
    links: dict[str, tuple[int, int]]  # url -> (unique, total)


def campaign_snapshot(
    workspace_id: int, campaign_id: int, key: str, path: Path | None = None
) -> CampaignSnapshot | None:
    """The rollups' counts of one campaign, or None (no file, another database, no row)."""
    try:
        with open_rollups(path) as con:
            info = con.execute("SELECT events_max_id, source_key FROM r.rollup_info").fetchall()
            if not info or info[0][1] != key:
                return None
            row = con.execute(
                "SELECT CASE WHEN delivered_estimated THEN 0 ELSE delivered END, unique_opens, "
                "total_opens, machine_opens, unique_clicks, total_clicks FROM r.campaigns "
                "WHERE workspace_id = ? AND campaign_id = ?",
                [workspace_id, campaign_id],
            ).fetchall()
            if not row:
                return None
            hours = con.execute(
                "SELECT hour, opens, clicks FROM r.campaign_hourly "
                "WHERE workspace_id = ? AND campaign_id = ? AND opens + clicks > 0",
                [workspace_id, campaign_id],
            ).fetchall()
            links = con.execute(
                "SELECT url, unique_clicks, total_clicks FROM r.link_clicks "
                "WHERE workspace_id = ? AND campaign_id = ?",
                [workspace_id, campaign_id],
            ).fetchall()
    except (RollupsMissing, duckdb.Error):
        return None
    delivered, unique_opens, total_opens, machine_opens, unique_clicks, total_clicks = (
        int(v) for v in row[0]
    )
    return CampaignSnapshot(
        int(info[0][0] or 0),
        delivered,
        unique_opens,
        total_opens,
        machine_opens,
        unique_clicks,
        total_clicks,
        {h.replace(tzinfo=UTC): (int(o), int(c)) for h, o, c in hours},
        {u: (int(a), int(b)) for u, a, b in links},
    )
