"""Building the rollups: sources streamed into DuckDB, the aggregates, the file swapped in.
About 750 lines, most of them the aggregates' DuckDB SQL, kept beside the loader that
feeds them (automations' aggregates live in `automations`).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from core.analytics.rollups.automations import (
    AUTOMATION_AGGREGATES,
    AUTOMATION_COLUMNS,
    AUTOMATION_SQL,
    MARK_KEY,
    NEXT_MARK_SQL,
    reread_clause,
)
from core.analytics.rollups.base import (
    CHUNK_ROWS,
    STAGES,
    TABLES,
    RollupBusy,
    RollupResult,
    _exclusive,
    _state_path,
    rollup_path,
    source_key,
)
from core.infra.db import get_engine
from core.models.statuses import FINISHED

log = logging.getLogger(__name__)

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
    # An automation's message (campaign_id NULL): its automation and step (issue 18), and
    # whether it is younger than the lag (the automation mark stops before it).
    "automation_id": "INTEGER",
    "step_path": "VARCHAR",
    "young": "BOOLEAN",
}


MESSAGE_PG = (
    "SELECT id, workspace_id, campaign_id, status, floor(extract(epoch FROM sent_at))::bigint, "
    "lower(split_part(email, '@', 2)), automation_id, step_path, "
    "queued_at > now() - make_interval(secs => {lag}) FROM message"
)


MESSAGE_SQLITE = (
    "SELECT id, workspace_id, campaign_id, status, CAST(strftime('%s', sent_at) AS INTEGER), "
    "lower(substr(email, instr(email, '@') + 1)), automation_id, step_path, "
    "queued_at > datetime('now', '-{lag} seconds') FROM message"
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


# What a campaign's row says about its ledger: a finished campaign whose signature has not
# changed since its messages were read keeps them (the builder does not read them again, and
# the dashboard counts the rollups' figures for it instead of the ledger's).
SIGNATURE_SQL = "SELECT id, status, updated_at FROM campaign"


def campaign_signatures(driver: Any, workspace_id: int | None = None) -> dict[int, tuple[str, str]]:
    """campaign id -> (status, signature), read with the driver's own cursor so the builder
    and the dashboard format `updated_at` the same way."""
    cur = driver.cursor()
    try:
        if workspace_id is None:
            cur.execute(SIGNATURE_SQL)
        else:
            cur.execute(f"{SIGNATURE_SQL} WHERE workspace_id = {int(workspace_id)}")
        return {cid: (st, f"{st}|{updated}") for cid, st, updated in cur.fetchall()}
    finally:
        cur.close()


# Not listed in TABLES (the Data page and the export leave them out): what the dashboard
# adds its live figures to. Messages count as sent on their sending day, or the campaign's
# start day when the ledger has no time (an uncertain message).
INTERNAL_AGGREGATES = [
    """
    CREATE TABLE out.campaign_sent_daily AS
    SELECT m.workspace_id, m.campaign_id,
           CAST(make_timestamp((coalesce(m.sent_ts, c.started_ts) // 86400) * 86400 * 1000000)
                AS DATE) AS day,
           count(*) AS sent
    FROM message_fact m JOIN campaign_src c USING (campaign_id)
    WHERE m.status IN ('sent', 'uncertain')
    GROUP BY ALL ORDER BY m.workspace_id, m.campaign_id, day
    """,
    """
    CREATE TABLE out.campaign_signature AS
    SELECT c.workspace_id, s.campaign_id, s.status, s.sig
    FROM signature_src s JOIN campaign_src c USING (campaign_id)
    ORDER BY c.workspace_id, s.campaign_id
    """,
]


Progress = Callable[[int, int, str], None]


_SOURCE_NAMES = {
    "event_fact": "new events",
    "message_fact": "messages",
    "contact_fact": "contacts",
    "campaign_src": "campaigns",
    "workspace_src": "workspaces",
    "automation_src": "automations",
}


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
    FROM message_fact WHERE campaign_id IS NOT NULL GROUP BY campaign_id
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
    progress: Progress | None = None,
) -> RollupResult:
    """Bring the state up to date and publish a new rollup file (see the module docstring).

    `progress(step, steps, stage)` is called as the build goes (the Data page shows it)."""
    started = time.monotonic()
    path = rollup_path(path)
    report = progress or (lambda step, steps, stage: None)
    try:
        with _exclusive(path, False):
            return _build(url, path, full, lag_seconds, started, report)
    except RollupBusy:
        if not wait:
            raise
    report(0, BUILD_STEPS, "waiting for another rebuild to finish")
    with _exclusive(path, True):
        return _build(url, path, full, lag_seconds, started, report)


# Reading the sources (one step each), the aggregates, writing the file.
BUILD_STEPS = 1 + 6 + len(AGGREGATES) + len(AUTOMATION_AGGREGATES) + len(INTERNAL_AGGREGATES) + 1


def _build(
    url: str | None, path: Path, full: bool, lag: int, started: float, report: Progress
) -> RollupResult:
    STAGES.clear()
    step = 0
    report(step, BUILD_STEPS, "reading campaigns")
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
        have_messages = [
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'message_fact' ORDER BY ordinal_position"
            ).fetchall()
        ]
        # State from an older layout: start over.
        if (have and have != list(EVENT_COLUMNS)) or (
            have_messages and have_messages != list(MESSAGE_COLUMNS)
        ):
            for table in ("event_fact", "message_fact", "message_loaded", "meta"):
                con.execute(f"DROP TABLE IF EXISTS {table}")
        _create(con, "event_fact", EVENT_COLUMNS, temp=False)
        _create(con, "message_fact", MESSAGE_COLUMNS, temp=False)
        con.execute("CREATE TABLE IF NOT EXISTS message_loaded (campaign_id INTEGER, sig VARCHAR)")
        con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value BIGINT)")
        rows = con.execute("SELECT value FROM meta WHERE key = 'event_safe_id'").fetchall()
        safe = int(rows[0][0]) if rows else 0
        rows = con.execute("SELECT value FROM meta WHERE key = ?", [MARK_KEY]).fetchall()
        auto_mark = int(rows[0][0]) if rows else 0
        pg = dialect == "postgresql"
        # Messages are kept per campaign: a finished campaign whose row has not changed
        # since its messages were read (same status and updated_at) is not read again.
        # A raw connection: on SQLite a SQLAlchemy one would BEGIN IMMEDIATE (a write lock).
        raw = engine.raw_connection()
        try:
            driver = raw.driver_connection
            assert driver is not None  # a checked-out connection has its driver connection
            current = campaign_signatures(driver)
            raw.rollback()
        finally:
            raw.close()
        loaded = dict(con.execute("SELECT campaign_id, sig FROM message_loaded").fetchall())
        keep = {cid for cid, sig in loaded.items() if cid in current and current[cid][1] == sig}
        reread = sorted(cid for cid in current if cid not in keep)
        message_sql = (MESSAGE_PG if pg else MESSAGE_SQLITE).format(lag=int(lag))
        # Campaigns' messages per campaign; automations' above their mark.
        if reread:
            message_sql += f" WHERE campaign_id IN ({', '.join(str(c) for c in reread)}) OR "
        else:
            message_sql += " WHERE "
        message_sql += reread_clause(auto_mark)
        sources = {
            "event_fact": (
                EVENT_COLUMNS,
                (EVENT_PG if pg else EVENT_SQLITE).format(hw=safe, lag=int(lag)),
            ),
            "message_fact": (MESSAGE_COLUMNS, message_sql),
            "contact_fact": (CONTACT_COLUMNS, CONTACT_PG if pg else CONTACT_SQLITE),
            "campaign_src": (CAMPAIGN_COLUMNS, CAMPAIGN_PG if pg else CAMPAIGN_SQLITE),
            "workspace_src": (WORKSPACE_COLUMNS, WORKSPACE_SQL),
            "automation_src": (AUTOMATION_COLUMNS, AUTOMATION_SQL),
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
            con.execute(
                "DELETE FROM message_fact WHERE campaign_id IS NOT NULL "
                "AND campaign_id NOT IN (SELECT * FROM kept)"
            )
            con.execute(f"DELETE FROM message_fact WHERE {reread_clause(auto_mark)}")
            con.execute("DELETE FROM message_loaded")
            final = [
                [cid, sig]
                for cid, (status, sig) in current.items()
                if cid in keep or status in FINISHED
            ]
            if final:
                con.executemany("INSERT INTO message_loaded VALUES (?, ?)", final)
            for table, (columns, query) in sources.items():
                step += 1
                report(step, BUILD_STEPS, f"reading {_SOURCE_NAMES[table]}")
                if pg:
                    _load_csv(con, table, columns, files.pop(table))
                else:
                    _load_sqlite(con, engine, table, columns, query)
            messages_read = con.execute(
                "SELECT count(*) FROM message_fact WHERE (campaign_id IS NOT NULL AND "
                f"campaign_id NOT IN (SELECT * FROM kept)) OR {reread_clause(auto_mark)}"
            ).fetchall()[0][0]
            next_mark = con.execute(NEXT_MARK_SQL, [auto_mark, auto_mark]).fetchall()[0][0]
            con.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)", [MARK_KEY, max(int(next_mark), 0)]
            )
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
        con.execute(
            "CREATE TEMP TABLE signature_src (campaign_id INTEGER, status VARCHAR, sig VARCHAR)"
        )
        if current:
            con.executemany(
                "INSERT INTO signature_src VALUES (?, ?, ?)",
                [[cid, status, sig] for cid, (status, sig) in current.items()],
            )
        for sql in AGGREGATES + AUTOMATION_AGGREGATES + INTERNAL_AGGREGATES:
            step += 1
            report(step, BUILD_STEPS, "adding up")
            mark = time.monotonic()
            con.execute(sql)
            STAGES[" ".join(sql.split()[:4])] = round(time.monotonic() - mark, 3)
        step += 1
        report(step, BUILD_STEPS, "writing the file")
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
    report(BUILD_STEPS, BUILD_STEPS, "done")
    return result
