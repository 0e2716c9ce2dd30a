"""The Data page: read-only SQL over one workspace's rows of the rollups, run in a child
process with memory, thread and time limits, and the workspace's export."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from core.analytics.rollups.base import TABLES, RollupsMissing, rollup_path
from core.infra.config import settings
from core.infra.errors import ValidationFailed

EXAMPLE_QUERIES: dict[str, str] = {
    "Best campaigns by open rate": (
        "SELECT name, sent, delivered, unique_opens, round(open_rate * 100, 1) AS open_pct\n"
        "FROM campaigns WHERE delivered > 0 ORDER BY open_rate DESC LIMIT 20"
    ),
    "Emails sent per week": (
        "SELECT date_trunc('week', day) AS week, sum(sent) AS sent, sum(bounces) AS bounces\n"
        "FROM workspace_daily GROUP BY week ORDER BY week"
    ),
    "Most clicked links": (
        "SELECT url, sum(unique_clicks) AS clickers, sum(total_clicks) AS clicks\n"
        "FROM link_clicks GROUP BY url ORDER BY clickers DESC LIMIT 20"
    ),
    "Contact growth, last 90 days": (
        "SELECT day, new_contacts, lost_contacts, cumulative_contacts\n"
        "FROM contact_growth_daily WHERE day >= current_date - 90 ORDER BY day"
    ),
    "Opens by hour after sending": (
        "SELECT h.hour - c.started_at AS after_start, sum(h.opens) AS opens\n"
        "FROM campaign_hourly h JOIN campaigns c USING (campaign_id)\n"
        "GROUP BY after_start ORDER BY after_start LIMIT 72"
    ),
    "Domains with the most bounces": (
        "SELECT domain, sum(recipients) AS recipients, sum(bounces) AS bounces\n"
        "FROM campaign_domains GROUP BY domain ORDER BY bounces DESC LIMIT 20"
    ),
}


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple]
    truncated: bool
    seconds: float


CHILD_STARTUP_SECONDS = 3.0


class QueryRefused(ValidationFailed):
    """Only one SELECT statement is allowed."""


def workspace_query(
    workspace_id: int,
    sql: str,
    path: Path | None = None,
    row_limit: int = 1000,
    time_limit: float = 10.0,
) -> QueryResult:
    """Run the data team's SELECT over the rollups, seeing only `workspace_id`'s rows.

    The file is attached read-only; this workspace's rows are copied into an in-memory
    database, the file is detached, and external access (files, ATTACH, COPY) is switched
    off and locked before the query runs. Only a single SELECT is accepted. It runs in a
    child process (core/analytics/data_query.py) with DuckDB's memory_limit (DATA_QUERY_MEMORY_MB),
    DATA_QUERY_THREADS threads and an address-space limit; the child is killed after
    `time_limit` seconds, and at most `row_limit` rows come back. The error names the
    limit that stopped the query.
    """
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryRefused(f"The query does not parse: {exc}") from exc
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise QueryRefused("Only a single SELECT query is allowed here; the rollups are read-only.")
    path = rollup_path(path)
    if not path.exists():
        raise RollupsMissing("The rollups have not been built yet: use Rebuild now above.")
    request = {
        "path": str(path),
        "workspace_id": workspace_id,
        "tables": list(TABLES),
        "sql": statements[0].query,
        "row_limit": row_limit,
        "memory_mb": settings.data_query_memory_mb,
        "threads": settings.data_query_threads,
    }
    started = time.monotonic()
    # A child process the time limit can kill (see core/analytics/data_query.py); its start-up
    # (about a third of a second) is not counted against the query.
    try:
        done = subprocess.run(
            [sys.executable, "-m", "core.analytics.data_query"],
            input=json.dumps(request).encode(),
            capture_output=True,
            timeout=time_limit + CHILD_STARTUP_SECONDS,
            cwd=Path(__file__).resolve().parents[3],
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise QueryRefused(
            f"The query ran longer than {time_limit:g} s and was stopped (time limit)."
        ) from exc
    answer: dict[str, Any]
    try:
        answer = pickle.loads(done.stdout) if done.returncode == 0 else {"error": "memory"}
    except (pickle.UnpicklingError, EOFError):
        answer = {"error": "memory"}
    if answer.get("error") == "memory":
        raise QueryRefused(
            f"The query needed more than {settings.data_query_memory_mb:,} MB of memory and "
            "was stopped (memory limit, DATA_QUERY_MEMORY_MB)."
        )
    if "error" in answer:
        raise QueryRefused(answer["detail"])
    rows = answer["rows"]
    return QueryResult(
        answer["columns"],
        rows[:row_limit],
        len(rows) > row_limit,
        round(time.monotonic() - started, 3),
    )


def export_workspace(workspace_id: int, path: Path | None = None) -> bytes:
    """A DuckDB file holding only `workspace_id`'s rows of every rollup table (download)."""
    source = rollup_path(path)
    if not source.exists():
        raise RollupsMissing("The rollups have not been built yet: use Rebuild now above.")
    with tempfile.TemporaryDirectory(dir=source.parent) as tmp:
        dest = Path(tmp) / "export.duckdb"
        con = duckdb.connect(":memory:")
        try:
            con.execute(f"ATTACH '{source}' AS r (READ_ONLY)")
            con.execute(f"ATTACH '{dest}' AS x")
            for name in TABLES:
                where = "" if name == "rollup_info" else " WHERE workspace_id = ?"
                params = [] if name == "rollup_info" else [workspace_id]
                con.execute(f"CREATE TABLE x.{name} AS SELECT * FROM r.{name}{where}", params)
            con.execute("CHECKPOINT x")
            con.execute("DETACH x")
        finally:
            con.close()
        return dest.read_bytes()
