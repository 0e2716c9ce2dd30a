"""Automations in the rollups (issue 18): their ledger rows (campaign_id NULL, automation_id
and step set) are read incrementally, and two tables add them up, labelled with the
automation's name.

Automations never finish, so their messages cannot be kept per campaign as campaigns'
are. Instead a mark on `message.id`: every automation message at or above it is read
again on each build (deleted first), and the mark then moves up to the first message that
may still change (not sent, failed or cancelled) or is younger than the build's lag (a
lower id may still be uncommitted), or past the last one read.
"""

from __future__ import annotations

AUTOMATION_COLUMNS = {
    "automation_id": "INTEGER",
    "workspace_id": "INTEGER",
    "name": "VARCHAR",
    "status": "VARCHAR",
}


AUTOMATION_SQL = "SELECT id, workspace_id, name, status FROM automation"


# The state's meta key of the mark, and the clause that picks what is read again.
MARK_KEY = "automation_message_mark"


def reread_clause(mark: int) -> str:
    return f"(automation_id IS NOT NULL AND id >= {int(mark)})"


# The first id the next build must read again (run inside the builder's transaction).
NEXT_MARK_SQL = """
SELECT coalesce(
  (SELECT min(id) FROM message_fact
   WHERE automation_id IS NOT NULL AND id >= ?
     AND (young OR status NOT IN ('sent', 'failed', 'cancelled'))),
  (SELECT max(id) + 1 FROM message_fact WHERE automation_id IS NOT NULL),
  ?)
"""


AUTOMATION_AGGREGATES = [
    # Events of automations' messages, counted as for campaigns (ev's kinds).
    """
    CREATE TEMP TABLE auto_ev AS
    SELECT m.automation_id, m.step_path, e.message_id, e.kind, e.ts
    FROM ev e JOIN message_fact m ON m.id = e.message_id
    WHERE e.kind IS NOT NULL AND m.automation_id IS NOT NULL
    """,
    """
    CREATE TABLE out.automation_daily AS
    WITH s AS (
      SELECT workspace_id, automation_id, step_path,
             CAST(make_timestamp((sent_ts // 86400) * 86400 * 1000000) AS DATE) AS day,
             count(*) AS sent
      FROM message_fact
      WHERE automation_id IS NOT NULL AND status IN ('sent', 'uncertain') AND sent_ts IS NOT NULL
      GROUP BY ALL
    ), x AS (
      SELECT automation_id, step_path,
             CAST(make_timestamp((ts // 86400) * 86400 * 1000000) AS DATE) AS day,
             kind, message_id, count(*) AS n
      FROM auto_ev GROUP BY ALL
    ), e AS (
      SELECT automation_id, step_path, day,
             coalesce(sum(n) FILTER (WHERE kind = 'delivered'), 0)::BIGINT AS delivered,
             count(*) FILTER (WHERE kind = 'open') AS unique_opens,
             count(*) FILTER (WHERE kind = 'click') AS unique_clicks,
             coalesce(sum(n) FILTER (WHERE kind IN ('hard_bounce', 'soft_bounce')), 0)::BIGINT
               AS bounces,
             coalesce(sum(n) FILTER (WHERE kind = 'complaint'), 0)::BIGINT AS complaints,
             coalesce(sum(n) FILTER (WHERE kind = 'unsubscribe'), 0)::BIGINT AS unsubscribes
      FROM x GROUP BY ALL
    ), k AS (
      SELECT automation_id, step_path, day FROM s
      UNION SELECT automation_id, step_path, day FROM e
    )
    SELECT a.workspace_id, k.automation_id, a.name AS automation, k.step_path AS step, k.day,
           coalesce(s.sent, 0) AS sent, coalesce(e.delivered, 0) AS delivered,
           coalesce(e.unique_opens, 0) AS unique_opens,
           coalesce(e.unique_clicks, 0) AS unique_clicks, coalesce(e.bounces, 0) AS bounces,
           coalesce(e.complaints, 0) AS complaints, coalesce(e.unsubscribes, 0) AS unsubscribes
    FROM k JOIN automation_src a USING (automation_id)
      LEFT JOIN s USING (automation_id, step_path, day)
      LEFT JOIN e USING (automation_id, step_path, day)
    ORDER BY a.workspace_id, k.automation_id, k.step_path, k.day
    """,
    """
    CREATE TABLE out.automations AS
    WITH m AS (
      SELECT automation_id,
             count(*) FILTER (WHERE status IN ('sent', 'uncertain')) AS sent,
             count(*) FILTER (WHERE status = 'failed') AS failed,
             make_timestamp(min(sent_ts) * 1000000) AS first_sent_at,
             make_timestamp(max(sent_ts) * 1000000) AS last_sent_at
      FROM message_fact WHERE automation_id IS NOT NULL GROUP BY ALL
    ), e AS (
      SELECT automation_id,
             count(*) FILTER (WHERE kind = 'delivered') AS delivered,
             count(DISTINCT message_id) FILTER (WHERE kind = 'open') AS unique_opens,
             count(DISTINCT message_id) FILTER (WHERE kind = 'click') AS unique_clicks,
             count(DISTINCT message_id) FILTER (WHERE kind IN ('hard_bounce', 'soft_bounce'))
               AS bounces,
             count(*) FILTER (WHERE kind = 'complaint') AS complaints,
             count(*) FILTER (WHERE kind = 'unsubscribe') AS unsubscribes
      FROM auto_ev GROUP BY ALL
    ), t AS (
      SELECT a.workspace_id, a.automation_id, a.name, a.status,
             coalesce(m.sent, 0) AS sent, coalesce(m.failed, 0) AS failed,
             coalesce(e.delivered, 0) AS delivered_events,
             coalesce(e.unique_opens, 0) AS unique_opens,
             coalesce(e.unique_clicks, 0) AS unique_clicks, coalesce(e.bounces, 0) AS bounces,
             coalesce(e.complaints, 0) AS complaints,
             coalesce(e.unsubscribes, 0) AS unsubscribes,
             m.first_sent_at, m.last_sent_at
      FROM automation_src a LEFT JOIN m USING (automation_id) LEFT JOIN e USING (automation_id)
    ), d AS (
      -- Delivered as in the campaigns table: delivery events, else sent less bounces.
      SELECT * EXCLUDE (delivered_events),
             CASE WHEN delivered_events > 0 THEN delivered_events
                  ELSE greatest(sent - bounces, 0) END AS delivered
      FROM t
    )
    SELECT *, unique_opens / nullif(delivered, 0) AS open_rate,
           unique_clicks / nullif(delivered, 0) AS click_rate
    FROM d
    ORDER BY workspace_id, automation_id
    """,
]
