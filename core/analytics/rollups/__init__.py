"""DuckDB rollups for the dashboard's trends and the data team.

How a rebuild works (`build_rollups`, run by beat, by the Data page's "Rebuild now" and by
`python -m core rollup`):

1. A state file next to the rollups (`<ROLLUP_PATH>.state`, private to the builder) keeps a
   compact copy of every event, read incrementally: only events above a high-water mark on
   `event.id` are fetched. Events newer than `lag_seconds` may still have lower-numbered
   neighbours in uncommitted transactions, so the mark stops before the first young event
   and the rows above it are read again next time (deleted first, so never twice).
2. Contacts, campaigns, automations and workspaces (statuses change) are re-read whole;
   a campaign's messages until it has finished and not changed since; automations'
   messages (no campaign) above a mark on their id (`automations`).
3. Sources stream in chunks into DuckDB (PostgreSQL: `COPY ... TO STDOUT` CSV into DuckDB's
   parallel CSV reader; SQLite: `fetchmany` batches as Arrow tables); no DuckDB extension
   is needed. All aggregation runs inside DuckDB.
4. The tables are written to a new file, checkpointed, and renamed over ROLLUP_PATH, so a
   reader never sees half a refresh and never blocks a rebuild: readers that have the old
   file open keep reading it; the next connection opens the new one.

Days and hours are UTC. Every table carries `workspace_id`.

Modules: `base` (the file, its lock, the tables), `build`, `automations` (their messages'
mark and tables), `read` (the dashboard's
figures, status, campaign snapshots), `query` (the Data page's sandboxed SQL and the
export), `rebuild` (a rebuild requested from the Data page, run by the worker).
"""

from core.analytics.rollups.base import (
    TABLES,
    RollupBusy,
    RollupResult,
    RollupsMissing,
    check_table_name,
    rollup_path,
    source_key,
)
from core.analytics.rollups.build import BUILD_STEPS, build_rollups, campaign_signatures
from core.analytics.rollups.query import (
    EXAMPLE_QUERIES,
    QueryRefused,
    QueryResult,
    export_workspace,
    workspace_query,
)
from core.analytics.rollups.read import (
    CampaignSnapshot,
    DashboardRollup,
    campaign_domains,
    campaign_snapshot,
    dashboard_rollup,
    open_rollups,
    rollup_status,
)
from core.analytics.rollups.rebuild import (
    RebuildStatus,
    rebuild_status,
    request_rebuild,
    run_rebuild,
)

__all__ = [
    "BUILD_STEPS",
    "EXAMPLE_QUERIES",
    "TABLES",
    "CampaignSnapshot",
    "DashboardRollup",
    "QueryRefused",
    "QueryResult",
    "RebuildStatus",
    "RollupBusy",
    "RollupResult",
    "RollupsMissing",
    "build_rollups",
    "campaign_signatures",
    "campaign_domains",
    "campaign_snapshot",
    "check_table_name",
    "dashboard_rollup",
    "export_workspace",
    "open_rollups",
    "rebuild_status",
    "request_rebuild",
    "rollup_path",
    "rollup_status",
    "run_rebuild",
    "source_key",
    "workspace_query",
]
