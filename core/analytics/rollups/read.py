"""Reading the rollups: the dashboard's trends, their status, a campaign's snapshot and
domains."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
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
        raise RollupsMissing("The rollups have not been built yet.")
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"ATTACH '{path}' AS r (READ_ONLY)")
        yield con
    finally:
        con.close()


@dataclass
class DashboardRollup:
    """One workspace's dashboard figures in the rollups, counted through event id `through`.

    The dashboard (core.analytics.reports.dashboard) adds what the SQL database has beyond
    it: events above `through`, and the ledger of campaigns whose row changed since."""

    built_at: datetime
    through: int  # the highest event id the file counts
    # campaign id -> (status, signature) when the file was built (see build.campaign_signatures)
    signatures: dict[int, tuple[str, str]]
    # campaign id -> (messages sent, of which on or after the 30-day window's first day)
    sent: dict[int, tuple[int, int]]
    # campaign id -> (sent, bounced messages, delivered events, unique opens, unique clicks)
    # as in the `campaigns` table (delivered events: 0 when delivery was estimated)
    counts: dict[int, tuple[int, int, int, int, int]]
    bounces_30d: int
    complaints_30d: int
    lost_by_day: dict[date, int]  # contacts lost per UTC day, from the 90-day window's start


def dashboard_rollup(
    workspace_id: int, key: str, d30: date, d90: date, path: Path | None = None
) -> DashboardRollup | None:
    """What the rollups hold for the dashboard; None before the first build, or when the file
    was built from another database (`key`, see base.source_key)."""
    try:
        with open_rollups(path) as con:
            info = con.execute(
                "SELECT built_at, events_max_id, source_key FROM r.rollup_info"
            ).fetchall()
            if not info or info[0][2] != key:
                return None
            tables = {
                t
                for (t,) in con.execute(
                    "SELECT table_name FROM duckdb_tables() WHERE database_name = 'r'"
                ).fetchall()
            }
            if not {"campaign_signature", "campaign_sent_daily"} <= tables:
                return None  # a file from before these tables: the next build adds them
            ws = [workspace_id]
            signatures = {
                cid: (status, sig)
                for cid, status, sig in con.execute(
                    "SELECT campaign_id, status, sig FROM r.campaign_signature "
                    "WHERE workspace_id = ?",
                    ws,
                ).fetchall()
            }
            sent = {
                cid: (int(total), int(recent))
                for cid, total, recent in con.execute(
                    "SELECT campaign_id, sum(sent), coalesce(sum(sent) FILTER (WHERE day >= ?), 0) "
                    "FROM r.campaign_sent_daily WHERE workspace_id = ? GROUP BY campaign_id",
                    [d30, workspace_id],
                ).fetchall()
            }
            counts = {
                int(row[0]): tuple(int(v) for v in row[1:])
                for row in con.execute(
                    "SELECT campaign_id, sent, bounces, "
                    "CASE WHEN delivered_estimated THEN 0 ELSE delivered END, unique_opens, "
                    "unique_clicks FROM r.campaigns WHERE workspace_id = ?",
                    ws,
                ).fetchall()
            }
            bounces, complaints = con.execute(
                "SELECT coalesce(sum(bounces), 0), coalesce(sum(complaints), 0) "
                "FROM r.workspace_daily WHERE workspace_id = ? AND day >= ?",
                [workspace_id, d30],
            ).fetchall()[0]
            lost = con.execute(
                "SELECT day, lost_contacts FROM r.contact_growth_daily "
                "WHERE workspace_id = ? AND day >= ? AND lost_contacts > 0",
                [workspace_id, d90],
            ).fetchall()
    except (RollupsMissing, duckdb.Error):
        return None
    return DashboardRollup(
        built_at=info[0][0].replace(tzinfo=UTC),
        through=int(info[0][1] or 0),
        signatures=signatures,
        sent=sent,
        counts=counts,  # type: ignore[arg-type]  # five ints per row, as selected
        bounces_30d=int(bounces),
        complaints_30d=int(complaints),
        lost_by_day={d: int(n) for d, n in lost},
    )


def rollup_status(path: Path | None = None) -> dict[str, Any] | None:
    """When the file was built and its size, or None when it does not exist."""
    try:
        with open_rollups(path) as con:
            built_at, through, max_id, events = con.execute(
                "SELECT built_at, events_through_id, events_max_id, events FROM r.rollup_info"
            ).fetchall()[0]
    except RollupsMissing:
        return None
    p = rollup_path(path)
    return {
        "built_at": built_at.replace(tzinfo=UTC),
        "events_through_id": through,
        "events_max_id": max_id,
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
