"""DuckDB rollups for the dashboard's trends and the data team.

How a rebuild works (`build_rollups`, run by beat and by `python -m core rollup`):

1. A state file next to the rollups (`<ROLLUP_PATH>.state`, private to the builder) keeps a
   compact copy of every event, read incrementally: only events above a high-water mark on
   `event.id` are fetched. Events newer than `lag_seconds` may still have lower-numbered
   neighbours in uncommitted transactions, so the mark stops before the first young event
   and the rows above it are read again next time (deleted first, so never twice).
2. Messages, contacts, campaigns and workspaces (statuses change) are re-read whole.
3. Sources stream in chunks into DuckDB (PostgreSQL: `COPY ... TO STDOUT` CSV into DuckDB's
   parallel CSV reader; SQLite: `fetchmany` batches as Arrow tables); no DuckDB extension
   is needed. All aggregation runs inside DuckDB.
4. The tables are written to a new file, checkpointed, and renamed over ROLLUP_PATH, so a
   reader never sees half a refresh and never blocks a rebuild: readers that have the old
   file open keep reading it; the next connection opens the new one.

Days and hours are UTC. Every table carries `workspace_id`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy.engine import make_url

from core.infra.config import settings
from core.infra.db import get_engine
from core.infra.errors import MailwrightError, ValidationFailed
from core.models.statuses import FINISHED

log = logging.getLogger(__name__)

# Table documentation: the README and the Data page show these.
TABLES: dict[str, str] = {
    "campaigns": "one row per campaign: totals and rates (same definitions as the report)",
    "campaign_daily": "per campaign and UTC day: deliveries, opens, clicks, bounces, …",
    "campaign_hourly": "per campaign and UTC hour: the same figures as campaign_daily",
    "link_clicks": "per campaign and link: unique and total human clicks",
    "campaign_domains": "per campaign and recipient domain: recipients, delivered, opens, …",
    "contact_growth_daily": "per UTC day: contacts added, lost (unsubscribed, complained, "
    "hard-bounced) and the cumulative number of contacts",
    "workspace_daily": "per UTC day: messages sent, deliveries, bounces, complaints, opens, clicks",
    "rollup_info": "when the file was built and up to which event id",
}

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

CHUNK_ROWS = 200_000
STAGES: dict[str, float] = {}  # seconds per stage of the last build in this process


class RollupBusy(MailwrightError):
    """Another rebuild holds the lock."""


class RollupsMissing(MailwrightError):
    """The rollup file has not been built yet."""


@dataclass
class RollupResult:
    path: Path
    built_at: datetime
    events_read: int
    events_total: int
    high_water: int
    seconds: float
    full: bool
    tables: dict[str, int] = field(default_factory=dict)
    stages: dict[str, float] = field(default_factory=dict)
    messages_read: int = 0


def rollup_path(path: Path | None = None) -> Path:
    path = path or settings.rollup_path
    assert path is not None  # Settings defaults it to data_dir / "rollups.duckdb"
    return Path(path)


def _state_path(path: Path) -> Path:
    return path.with_name(path.name + ".state")


@contextmanager
def _exclusive(path: Path, wait: bool) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError as exc:
            raise RollupBusy("A rollup rebuild is already running.") from exc
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --- Sources -------------------------------------------------------------------------------

# Each source: (columns with DuckDB types, PostgreSQL query, SQLite query).
EVENT_COLUMNS = {
    "id": "BIGINT",
    "workspace_id": "INTEGER",
    "campaign_id": "INTEGER",
    "message_id": "BIGINT",
    "contact_id": "BIGINT",
    "type": "VARCHAR",
    "source": "VARCHAR",
    "is_machine": "BOOLEAN",
    "bounce_type": "VARCHAR",
    "url": "VARCHAR",
    "ts": "BIGINT",
    "young": "BOOLEAN",
}
# Types the rollups count; "sent" (the ledger counts sends) and the rest are never read.
ROLLUP_EVENT_TYPES = "('delivered', 'open', 'click', 'bounce', 'complaint', 'unsubscribe')"
_EV = (
    "id, workspace_id, campaign_id, message_id, contact_id, type, source, is_machine, "
    "bounce_type, CASE WHEN type = 'click' THEN url END AS url"
)
EVENT_PG = (
    f"SELECT {_EV}, floor(extract(epoch FROM occurred_at))::bigint, "
    "created_at > now() - make_interval(secs => {lag}) FROM event "
    f"WHERE id > {{hw}} AND type IN {ROLLUP_EVENT_TYPES}"
)
EVENT_SQLITE = (
    f"SELECT {_EV}, CAST(strftime('%s', occurred_at) AS INTEGER), "
    "created_at > datetime('now', '-{lag} seconds') FROM event "
    f"WHERE id > {{hw}} AND type IN {ROLLUP_EVENT_TYPES}"
)

MESSAGE_COLUMNS = {
    "id": "BIGINT",
    "workspace_id": "INTEGER",
    "campaign_id": "INTEGER",
    "status": "VARCHAR",
    "sent_ts": "BIGINT",
    "domain": "VARCHAR",
}
MESSAGE_PG = (
    "SELECT id, workspace_id, campaign_id, status, floor(extract(epoch FROM sent_at))::bigint, "
    "lower(split_part(email, '@', 2)) FROM message"
)
MESSAGE_SQLITE = (
    "SELECT id, workspace_id, campaign_id, status, CAST(strftime('%s', sent_at) AS INTEGER), "
    "lower(substr(email, instr(email, '@') + 1)) FROM message"
)

# Contacts per workspace and UTC day of creation, counted by the database.
CONTACT_COLUMNS = {"workspace_id": "INTEGER", "created_ts": "BIGINT", "n": "BIGINT"}
CONTACT_PG = (
    "SELECT workspace_id, floor(extract(epoch FROM date_trunc('day', created_at "
    "AT TIME ZONE 'UTC')))::bigint, count(*) FROM contact GROUP BY 1, 2"
)
CONTACT_SQLITE = (
    "SELECT workspace_id, CAST(strftime('%s', date(created_at)) AS INTEGER), count(*) "
    "FROM contact GROUP BY 1, 2"
)

CAMPAIGN_COLUMNS = {
    "campaign_id": "INTEGER",
    "workspace_id": "INTEGER",
    "name": "VARCHAR",
    "status": "VARCHAR",
    "started_ts": "BIGINT",
    "finished_ts": "BIGINT",
}
CAMPAIGN_PG = (
    "SELECT id, workspace_id, name, status, floor(extract(epoch FROM started_at))::bigint, "
    "floor(extract(epoch FROM finished_at))::bigint FROM campaign"
)
CAMPAIGN_SQLITE = (
    "SELECT id, workspace_id, name, status, CAST(strftime('%s', started_at) AS INTEGER), "
    "CAST(strftime('%s', finished_at) AS INTEGER) FROM campaign"
)

WORKSPACE_COLUMNS = {"workspace_id": "INTEGER", "tracking_source": "VARCHAR"}
WORKSPACE_SQL = "SELECT id, tracking_source FROM workspace"


def _create(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, str], temp: bool):
    cols = ", ".join(f"{name} {type_}" for name, type_ in columns.items())
    kind = "TEMP TABLE" if temp else "TABLE IF NOT EXISTS"
    con.execute(f"CREATE {kind} {table} ({cols})")


def _copy_out(engine: Any, query: str, workdir: Path) -> Path:
    """PostgreSQL: `COPY (query) TO STDOUT` as CSV into a temporary file (own connection)."""
    fd, name = tempfile.mkstemp(suffix=".csv", dir=workdir)
    raw = engine.raw_connection()
    try:
        with (
            os.fdopen(fd, "wb") as out,
            raw.driver_connection.cursor() as cur,
            cur.copy(f"COPY ({query}) TO STDOUT (FORMAT csv)") as copy,
        ):
            for block in copy:
                out.write(block)
        raw.rollback()
    finally:
        raw.close()
    return Path(name)


def _copy_all_pg(engine: Any, queries: dict[str, str], workdir: Path) -> dict[str, Path]:
    """Run the COPYs side by side: PostgreSQL does the work in one backend per source."""
    results: dict[str, Path] = {}
    errors: list[BaseException] = []

    def run(table: str, query: str) -> None:
        mark = time.monotonic()
        try:
            results[table] = _copy_out(engine, query, workdir)
        except BaseException as exc:
            errors.append(exc)
        STAGES[f"copy {table}"] = round(time.monotonic() - mark, 3)

    threads = [threading.Thread(target=run, args=item) for item in queries.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        for path in results.values():
            path.unlink(missing_ok=True)
        raise errors[0]
    return results


def _load_csv(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, str], path: Path):
    mark = time.monotonic()
    spec = "{" + ", ".join(f"'{c}': '{t}'" for c, t in columns.items()) + "}"
    try:
        con.execute(
            f"INSERT INTO {table} SELECT * FROM read_csv(?, header = false, "
            f"columns = {spec}, auto_detect = false, quote = '\"', escape = '\"')",
            [str(path)],
        )
    finally:
        path.unlink(missing_ok=True)
    STAGES[f"load {table}"] = round(time.monotonic() - mark, 3)


def _load_sqlite(
    con: duckdb.DuckDBPyConnection, engine: Any, table: str, columns: dict[str, str], query: str
) -> None:
    """SQLite: `fetchmany` batches handed to DuckDB as Arrow tables."""
    import pyarrow as pa

    mark = time.monotonic()
    raw = engine.raw_connection()
    cur = raw.driver_connection.cursor()
    try:
        cur.execute(query)
        schema = pa.schema([(c, getattr(pa, _ARROW[t])()) for c, t in columns.items()])
        while True:
            rows = cur.fetchmany(CHUNK_ROWS)
            if not rows:
                break
            cols = list(zip(*rows, strict=True))
            batch = pa.table(
                [pa.array(cols[i], type=schema.field(i).type) for i in range(len(columns))],
                schema=schema,
            )
            con.register("_chunk", batch)
            con.execute(f"INSERT INTO {table} SELECT * FROM _chunk")
            con.unregister("_chunk")
    finally:
        cur.close()
        raw.rollback()
        raw.close()
    STAGES[f"load {table}"] = round(time.monotonic() - mark, 3)


_ARROW = {  # DuckDB type -> pyarrow type name (SQLite hands back 0 and 1 for booleans)
    "BIGINT": "int64",
    "INTEGER": "int32",
    "VARCHAR": "string",
    "BOOLEAN": "int8",
}


# --- Aggregates (DuckDB SQL over event_fact, message_fact, contact_fact, campaign_src) ----

_HOUR = "make_timestamp((ts // 3600) * 3600 * 1000000)"
_DAY = "CAST(make_timestamp((ts // 86400) * 86400 * 1000000) AS DATE)"

AGGREGATES = [
    # Events of live campaigns with what they count as: human opens and clicks come from
    # the workspace's tracking source only.
    """
    CREATE TEMP TABLE ev AS
    SELECT f.workspace_id, f.campaign_id, f.message_id, f.contact_id, f.type, f.url, f.ts,
           CASE
             WHEN f.type = 'open' AND f.source = w.tracking_source AND NOT f.is_machine
               THEN 'open'
             WHEN f.type = 'open' AND f.source = w.tracking_source THEN 'machine_open'
             WHEN f.type = 'click' AND f.source = w.tracking_source AND NOT f.is_machine
               THEN 'click'
             WHEN f.type IN ('open', 'click') THEN NULL
             WHEN f.type = 'bounce' AND f.bounce_type = 'hard' THEN 'hard_bounce'
             WHEN f.type = 'bounce' THEN 'soft_bounce'
             WHEN f.type IN ('delivered', 'complaint', 'unsubscribe') THEN f.type
           END AS kind
    FROM event_fact f JOIN workspace_src w ON w.workspace_id = f.workspace_id
    """,
    """
    CREATE TEMP TABLE per_msg AS
    SELECT campaign_id, message_id, kind, count(*) AS n
    FROM ev WHERE kind IS NOT NULL AND campaign_id IS NOT NULL
    GROUP BY ALL
    """,
    """
    CREATE TEMP TABLE msg_counts AS
    SELECT campaign_id,
           count(*) AS recipients,
           count(*) FILTER (WHERE status IN ('sent', 'uncertain')) AS sent,
           count(*) FILTER (WHERE status = 'uncertain') AS uncertain,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           count(*) FILTER (WHERE status IN ('queued', 'held', 'sending')) AS queued
    FROM message_fact GROUP BY campaign_id
    """,
    """
    CREATE TEMP TABLE ev_counts AS
    SELECT campaign_id,
           count(*) FILTER (WHERE kind = 'delivered') AS delivered_events,
           count(*) FILTER (WHERE kind = 'hard_bounce') AS hard_bounces,
           count(*) FILTER (WHERE kind = 'soft_bounce') AS soft_bounces,
           count(DISTINCT message_id) FILTER (WHERE kind IN ('hard_bounce', 'soft_bounce'))
             AS bounces,
           count(*) FILTER (WHERE kind = 'complaint') AS complaints,
           count(*) FILTER (WHERE kind = 'unsubscribe') AS unsubscribes,
           count(*) FILTER (WHERE kind = 'open') AS unique_opens,
           coalesce(sum(n) FILTER (WHERE kind = 'open'), 0) AS total_opens,
           coalesce(sum(n) FILTER (WHERE kind = 'machine_open'), 0) AS machine_opens,
           count(*) FILTER (WHERE kind = 'click') AS unique_clicks,
           coalesce(sum(n) FILTER (WHERE kind = 'click'), 0) AS total_clicks
    FROM per_msg GROUP BY campaign_id
    """,
    """
    CREATE TABLE out.campaigns AS
    WITH t AS (
      SELECT c.workspace_id, c.campaign_id, c.name, c.status,
             make_timestamp(c.started_ts * 1000000) AS started_at,
             make_timestamp(c.finished_ts * 1000000) AS finished_at,
             coalesce(m.recipients, 0) AS recipients, coalesce(m.sent, 0) AS sent,
             coalesce(m.uncertain, 0) AS uncertain, coalesce(m.failed, 0) AS failed,
             coalesce(m.queued, 0) AS queued,
             coalesce(e.delivered_events, 0) AS delivered_events,
             coalesce(e.hard_bounces, 0) AS hard_bounces,
             coalesce(e.soft_bounces, 0) AS soft_bounces, coalesce(e.bounces, 0) AS bounces,
             coalesce(e.complaints, 0) AS complaints,
             coalesce(e.unsubscribes, 0) AS unsubscribes,
             coalesce(e.unique_opens, 0) AS unique_opens,
             coalesce(e.total_opens, 0)::BIGINT AS total_opens,
             coalesce(e.machine_opens, 0)::BIGINT AS machine_opens,
             coalesce(e.unique_clicks, 0) AS unique_clicks,
             coalesce(e.total_clicks, 0)::BIGINT AS total_clicks
      FROM campaign_src c
      LEFT JOIN msg_counts m USING (campaign_id)
      LEFT JOIN ev_counts e USING (campaign_id)
    ), d AS (
      SELECT * EXCLUDE (delivered_events),
             CASE WHEN delivered_events > 0 THEN delivered_events
                  ELSE greatest(sent - bounces, 0) END AS delivered,
             delivered_events = 0 AND sent > 0 AS delivered_estimated
      FROM t
    )
    SELECT *,
           unique_opens / nullif(delivered, 0) AS open_rate,
           unique_clicks / nullif(delivered, 0) AS click_rate,
           unique_clicks / nullif(unique_opens, 0) AS click_to_open_rate,
           bounces / nullif(sent, 0) AS bounce_rate,
           complaints / nullif(delivered, 0) AS complaint_rate,
           unsubscribes / nullif(delivered, 0) AS unsubscribe_rate
    FROM d ORDER BY workspace_id, campaign_id
    """,
]


def _per_time(table: str, bucket: str, name: str) -> str:
    # Two levels (per message, then per bucket) instead of DISTINCT aggregates: DuckDB
    # runs plain hash aggregates in parallel and far faster.
    return f"""
    CREATE TABLE out.{table} AS
    WITH x AS (
      SELECT workspace_id, campaign_id, {bucket} AS {name}, kind, message_id, count(*) AS n
      FROM ev WHERE kind IS NOT NULL AND campaign_id IN (SELECT campaign_id FROM campaign_src)
      GROUP BY ALL
    )
    SELECT workspace_id, campaign_id, {name},
           coalesce(sum(n) FILTER (WHERE kind = 'delivered'), 0)::BIGINT AS delivered,
           coalesce(sum(n) FILTER (WHERE kind = 'open'), 0)::BIGINT AS opens,
           count(*) FILTER (WHERE kind = 'open') AS unique_opens,
           coalesce(sum(n) FILTER (WHERE kind = 'machine_open'), 0)::BIGINT AS machine_opens,
           coalesce(sum(n) FILTER (WHERE kind = 'click'), 0)::BIGINT AS clicks,
           count(*) FILTER (WHERE kind = 'click') AS unique_clicks,
           coalesce(sum(n) FILTER (WHERE kind IN ('hard_bounce', 'soft_bounce')), 0)::BIGINT
             AS bounces,
           coalesce(sum(n) FILTER (WHERE kind = 'complaint'), 0)::BIGINT AS complaints,
           coalesce(sum(n) FILTER (WHERE kind = 'unsubscribe'), 0)::BIGINT AS unsubscribes
    FROM x GROUP BY ALL ORDER BY workspace_id, campaign_id, {name}
    """


AGGREGATES += [
    _per_time("campaign_hourly", _HOUR, "hour"),
    _per_time("campaign_daily", _DAY, "day"),
    """
    CREATE TABLE out.link_clicks AS
    SELECT workspace_id, campaign_id, coalesce(url, '') AS url,
           count(DISTINCT message_id) AS unique_clicks, count(*) AS total_clicks,
           make_timestamp(min(ts) * 1000000) AS first_click_at,
           make_timestamp(max(ts) * 1000000) AS last_click_at
    FROM ev WHERE kind = 'click' AND campaign_id IN (SELECT campaign_id FROM campaign_src)
    GROUP BY ALL ORDER BY workspace_id, campaign_id, unique_clicks DESC
    """,
    """
    CREATE TABLE out.campaign_domains AS
    WITH m AS (
      SELECT workspace_id, campaign_id, domain, count(*) AS recipients,
             count(*) FILTER (WHERE status IN ('sent', 'uncertain')) AS sent,
             count(*) FILTER (WHERE status = 'failed') AS failed
      FROM message_fact WHERE campaign_id IN (SELECT campaign_id FROM campaign_src)
      GROUP BY ALL
    ), e AS (
      SELECT p.campaign_id, mf.domain,
             count(*) FILTER (WHERE kind = 'delivered') AS delivered,
             count(DISTINCT p.message_id) FILTER (WHERE kind IN ('hard_bounce', 'soft_bounce'))
               AS bounces,
             count(*) FILTER (WHERE kind = 'complaint') AS complaints,
             count(*) FILTER (WHERE kind = 'open') AS unique_opens,
             count(*) FILTER (WHERE kind = 'click') AS unique_clicks
      FROM per_msg p JOIN message_fact mf ON mf.id = p.message_id
      GROUP BY ALL
    )
    SELECT m.*, coalesce(e.delivered, 0) AS delivered, coalesce(e.bounces, 0) AS bounces,
           coalesce(e.complaints, 0) AS complaints, coalesce(e.unique_opens, 0) AS unique_opens,
           coalesce(e.unique_clicks, 0) AS unique_clicks
    FROM m LEFT JOIN e USING (campaign_id, domain)
    ORDER BY workspace_id, campaign_id, recipients DESC
    """,
    f"""
    CREATE TABLE out.contact_growth_daily AS
    WITH added AS (
      SELECT workspace_id, CAST(make_timestamp((created_ts // 86400) * 86400 * 1000000) AS DATE)
             AS day, sum(n) AS new_contacts
      FROM contact_fact GROUP BY ALL
    ), lost AS (
      SELECT workspace_id, day, count(DISTINCT contact_id) AS lost_contacts FROM (
        SELECT workspace_id, contact_id, {_DAY} AS day FROM ev
        WHERE kind IN ('unsubscribe', 'complaint', 'hard_bounce') AND contact_id IS NOT NULL
      ) GROUP BY ALL
    ), span AS (
      SELECT workspace_id, min(day) AS first_day FROM (
        SELECT workspace_id, day FROM added UNION ALL SELECT workspace_id, day FROM lost
      ) GROUP BY ALL
    ), days AS (
      SELECT s.workspace_id, CAST(d.day AS DATE) AS day
      FROM span s, LATERAL (
        SELECT unnest(generate_series(s.first_day::TIMESTAMP,
                      greatest(current_date, s.first_day)::TIMESTAMP, INTERVAL 1 DAY)) AS day
      ) d
    )
    SELECT d.workspace_id, d.day, coalesce(a.new_contacts, 0) AS new_contacts,
           coalesce(l.lost_contacts, 0) AS lost_contacts,
           sum(coalesce(a.new_contacts, 0)) OVER (
             PARTITION BY d.workspace_id ORDER BY d.day) AS cumulative_contacts
    FROM days d LEFT JOIN added a USING (workspace_id, day) LEFT JOIN lost l
      USING (workspace_id, day)
    ORDER BY d.workspace_id, d.day
    """,
    f"""
    CREATE TABLE out.workspace_daily AS
    WITH s AS (
      SELECT workspace_id,
             CAST(make_timestamp((sent_ts // 86400) * 86400 * 1000000) AS DATE) AS day,
             count(*) AS sent
      FROM message_fact WHERE status IN ('sent', 'uncertain') AND sent_ts IS NOT NULL
      GROUP BY ALL
    ), e AS (
      SELECT workspace_id, {_DAY} AS day,
             count(*) FILTER (WHERE kind = 'delivered') AS delivered,
             count(*) FILTER (WHERE kind IN ('hard_bounce', 'soft_bounce')) AS bounces,
             count(*) FILTER (WHERE kind = 'hard_bounce') AS hard_bounces,
             count(*) FILTER (WHERE kind = 'complaint') AS complaints,
             count(*) FILTER (WHERE kind = 'unsubscribe') AS unsubscribes,
             count(*) FILTER (WHERE kind = 'open') AS opens,
             count(*) FILTER (WHERE kind = 'click') AS clicks
      FROM ev WHERE kind IS NOT NULL GROUP BY ALL
    ), c AS (
      SELECT workspace_id,
             CAST(make_timestamp((created_ts // 86400) * 86400 * 1000000) AS DATE) AS day,
             sum(n) AS new_contacts
      FROM contact_fact GROUP BY ALL
    ), k AS (
      SELECT workspace_id, day FROM s UNION SELECT workspace_id, day FROM e
      UNION SELECT workspace_id, day FROM c
    )
    SELECT k.workspace_id, k.day, coalesce(s.sent, 0) AS sent,
           coalesce(e.delivered, 0) AS delivered, coalesce(e.bounces, 0) AS bounces,
           coalesce(e.hard_bounces, 0) AS hard_bounces, coalesce(e.complaints, 0) AS complaints,
           coalesce(e.unsubscribes, 0) AS unsubscribes, coalesce(e.opens, 0) AS opens,
           coalesce(e.clicks, 0) AS clicks, coalesce(c.new_contacts, 0) AS new_contacts
    FROM k LEFT JOIN s USING (workspace_id, day) LEFT JOIN e USING (workspace_id, day)
      LEFT JOIN c USING (workspace_id, day)
    ORDER BY k.workspace_id, k.day
    """,
]


def build_rollups(
    url: str | None = None,
    path: Path | None = None,
    full: bool = False,
    lag_seconds: int = 120,
    wait: bool = False,
) -> RollupResult:
    """Bring the state up to date and publish a new rollup file (see the module docstring)."""
    started = time.monotonic()
    path = rollup_path(path)
    with _exclusive(path, wait):
        return _build(url, path, full, lag_seconds, started)


def _build(url: str | None, path: Path, full: bool, lag: int, started: float) -> RollupResult:
    STAGES.clear()
    engine = get_engine(url)
    dialect = engine.dialect.name
    state = _state_path(path)
    if full:
        for stale in (state, state.with_name(state.name + ".wal")):
            stale.unlink(missing_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.unlink(missing_ok=True)
    workdir = path.parent
    con = duckdb.connect(str(state))
    try:
        have = [
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'event_fact' ORDER BY ordinal_position"
            ).fetchall()
        ]
        if have and have != list(EVENT_COLUMNS):  # state from an older layout: start over
            for table in ("event_fact", "message_fact", "message_loaded", "meta"):
                con.execute(f"DROP TABLE IF EXISTS {table}")
        _create(con, "event_fact", EVENT_COLUMNS, temp=False)
        _create(con, "message_fact", MESSAGE_COLUMNS, temp=False)
        con.execute("CREATE TABLE IF NOT EXISTS message_loaded (campaign_id INTEGER, sig VARCHAR)")
        con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value BIGINT)")
        rows = con.execute("SELECT value FROM meta WHERE key = 'event_safe_id'").fetchall()
        safe = int(rows[0][0]) if rows else 0
        pg = dialect == "postgresql"
        # Messages are kept per campaign: a finished campaign whose row has not changed
        # since its messages were read (same status and updated_at) is not read again.
        # A raw connection: on SQLite a SQLAlchemy one would BEGIN IMMEDIATE (a write lock).
        raw = engine.raw_connection()
        try:
            driver = raw.driver_connection
            assert driver is not None  # a checked-out connection has its driver connection
            cur = driver.cursor()
            cur.execute("SELECT id, status, updated_at FROM campaign")
            current = {cid: (st, f"{st}|{updated}") for cid, st, updated in cur.fetchall()}
            cur.close()
            raw.rollback()
        finally:
            raw.close()
        loaded = dict(con.execute("SELECT campaign_id, sig FROM message_loaded").fetchall())
        keep = {cid for cid, sig in loaded.items() if cid in current and current[cid][1] == sig}
        reread = sorted(cid for cid in current if cid not in keep)
        message_sql = MESSAGE_PG if pg else MESSAGE_SQLITE
        if reread:
            message_sql += f" WHERE campaign_id IN ({', '.join(str(c) for c in reread)})"
        else:
            message_sql += " WHERE false"
        sources = {
            "event_fact": (
                EVENT_COLUMNS,
                (EVENT_PG if pg else EVENT_SQLITE).format(hw=safe, lag=int(lag)),
            ),
            "message_fact": (MESSAGE_COLUMNS, message_sql),
            "contact_fact": (CONTACT_COLUMNS, CONTACT_PG if pg else CONTACT_SQLITE),
            "campaign_src": (CAMPAIGN_COLUMNS, CAMPAIGN_PG if pg else CAMPAIGN_SQLITE),
            "workspace_src": (WORKSPACE_COLUMNS, WORKSPACE_SQL),
        }
        files = _copy_all_pg(engine, {t: q for t, (_, q) in sources.items()}, workdir) if pg else {}
        try:
            for table, (columns, _) in sources.items():
                if table not in ("event_fact", "message_fact"):
                    _create(con, table, columns, temp=True)
            con.execute("BEGIN")
            con.execute("DELETE FROM event_fact WHERE id > ?", [safe])
            con.execute("CREATE TEMP TABLE kept (campaign_id INTEGER)")
            if keep:
                con.executemany("INSERT INTO kept VALUES (?)", [[c] for c in sorted(keep)])
            con.execute("DELETE FROM message_fact WHERE campaign_id NOT IN (SELECT * FROM kept)")
            con.execute("DELETE FROM message_loaded")
            final = [
                [cid, sig]
                for cid, (status, sig) in current.items()
                if cid in keep or status in FINISHED
            ]
            if final:
                con.executemany("INSERT INTO message_loaded VALUES (?, ?)", final)
            for table, (columns, query) in sources.items():
                if pg:
                    _load_csv(con, table, columns, files.pop(table))
                else:
                    _load_sqlite(con, engine, table, columns, query)
            messages_read = con.execute(
                "SELECT count(*) FROM message_fact WHERE campaign_id NOT IN (SELECT * FROM kept)"
            ).fetchall()[0][0]
            events_read = con.execute(
                "SELECT count(*) FROM event_fact WHERE id > ?", [safe]
            ).fetchall()[0][0]
            young = con.execute(
                "SELECT min(id) FROM event_fact WHERE id > ? AND young", [safe]
            ).fetchall()[0][0]
            top = con.execute("SELECT max(id) FROM event_fact").fetchall()[0][0] or 0
            new_safe = int(young) - 1 if young is not None else int(top)
            con.execute(
                "INSERT OR REPLACE INTO meta VALUES ('event_safe_id', ?)", [max(new_safe, safe)]
            )
            con.execute("COMMIT")
        finally:
            for leftover in files.values():
                leftover.unlink(missing_ok=True)
        con.execute(f"ATTACH '{tmp}' AS out")
        for sql in AGGREGATES:
            mark = time.monotonic()
            con.execute(sql)
            STAGES[" ".join(sql.split()[:4])] = round(time.monotonic() - mark, 3)
        built_at = datetime.now(UTC).replace(microsecond=0)
        total = con.execute("SELECT count(*) FROM event_fact").fetchall()[0][0]
        con.execute(
            "CREATE TABLE out.rollup_info AS SELECT ?::TIMESTAMP AS built_at, "
            "?::BIGINT AS events_through_id, ?::BIGINT AS events_max_id, ?::BIGINT AS events, "
            "? AS source_database, ? AS source_key",
            [built_at.replace(tzinfo=None), new_safe, top, total, dialect, source_key(engine.url)],
        )
        tables = {
            name: con.execute(f"SELECT count(*) FROM out.{name}").fetchall()[0][0]
            for name in TABLES
        }
        con.execute("CHECKPOINT out")
        con.execute("DETACH out")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    # The swap: readers holding the old file keep it; new connections open this one.
    os.replace(tmp, path)
    result = RollupResult(
        path,
        built_at,
        events_read,
        total,
        new_safe,
        round(time.monotonic() - started, 3),
        full,
        tables,
        dict(STAGES),
        messages_read,
    )
    log.info("rollups built: %s", result)
    return result


def source_key(url: Any) -> str:
    """Names the SQL database a rollup was built from (no password), so a report never
    mixes one database's snapshot with another's events."""
    rendered = make_url(str(url)) if not hasattr(url, "render_as_string") else url
    text = rendered.render_as_string(hide_password=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- Reading ------------------------------------------------------------------------------


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


def check_table_name(name: str) -> str:
    if name not in TABLES:
        raise ValidationFailed(f"Unknown rollup table {name!r}.")
    return name


# --- The Data page: read-only SQL over one workspace's rows ------------------------------


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
        raise RollupsMissing("The rollups have not been built yet (python -m core rollup).")
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
            cwd=Path(__file__).resolve().parents[2],
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


def export_workspace(workspace_id: int, path: Path | None = None) -> bytes:
    """A DuckDB file holding only `workspace_id`'s rows of every rollup table (download)."""
    source = rollup_path(path)
    if not source.exists():
        raise RollupsMissing("The rollups have not been built yet (python -m core rollup).")
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
