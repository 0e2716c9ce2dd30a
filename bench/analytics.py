"""Analytics speed: rollup rebuild, dashboard data and a big campaign's report data.

Generates (inside the database, with INSERT ... SELECT) a workspace of 1,000,000 x SCALE
contacts, a campaign sent to all of them and six campaigns to half of them, and about
10,900,000 x SCALE events (sent, delivered or bounced, human and machine opens, clicks,
complaints, unsubscribes). Then it measures:

- rollup_full_s: the first rollup build (no state; every event read)   goal 60 s
- rollup_incremental_s: a rebuild after 10,000 new events              (no goal)
- dashboard_s: all of the dashboard's data (analytics.dashboard) with   goal 1 s
  a live tail beyond the rollups' high-water mark: 10,000 new opens of the
  big campaign and a campaign of 5,000 sent after the last build, with
  deliveries, bounces, complaints and unsubscribes (dashboard_built_s:
  the same right after a build, no tail)
- report_s: the biggest campaign's report data (figures, timeline,     goal 1 s
  top links, first page of recipients), median of 3 after one warm-up
- sunset_s: the sunset policy's daily recompute (core.contacts.sunset,   goal 10 s
  one UPDATE over every contact, message and open/click event), the first run that marks
  (sunset_first_s) and a later one that finds nothing to change; with a policy the data
  can meet (--sunset-campaigns 3 over --sunset-days 120: seven campaigns at most here)

    python bench/analytics.py                       # SQLite, scale 0.02
    python bench/analytics.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres \\
        --scale 1                                   # the issue's figures, on PostgreSQL
    python bench/analytics.py --pg URL --scale 1 --sunset-only   # only the sunset part

With --pg a scratch database is created from that admin URL and dropped at the end.
The last line is one JSON object of the figures, their goal ratios and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="mw-bench-analytics-"))

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from core.analytics import reports as analytics
from core.analytics import rollups
from core.contacts import sunset
from core.infra.config import settings
from core.infra.db import dispose_all, get_engine, session_scope
from core.infra.migrate import migrate
from core.infra.permissions import Actor
from core.models import Base, Campaign, Contact, Event, Message, Workspace

DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "example.org", "web.de"]
LINKS = [f"https://example.com/page-{i}" for i in range(5)]


class Sql:
    """The few expressions that differ between PostgreSQL and SQLite."""

    def __init__(self, dialect: str) -> None:
        self.pg = dialect == "postgresql"

    def series(self, n: int) -> str:
        if self.pg:
            return f"WITH g(x) AS (SELECT generate_series(1, {n}))"
        return f"WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {n})"

    def ago(self, days_expr: str, secs_expr: str = "0") -> str:
        if self.pg:
            return f"now() - ({days_expr}) * interval '1 day' - ({secs_expr}) * interval '1 second'"
        return (
            f"datetime('now', printf('%+d days', -({days_expr})), "
            f"printf('%+d seconds', -({secs_expr})))"
        )

    def plus(self, base: str, secs_expr: str) -> str:
        if self.pg:
            return f"{base} + ({secs_expr}) * interval '1 second'"
        return f"datetime({base}, printf('%+d seconds', {secs_expr}))"

    def pick(self, values: list[str], idx_expr: str) -> str:
        cases = " ".join(f"WHEN {i} THEN '{v}'" for i, v in enumerate(values))
        return f"(CASE ({idx_expr}) % {len(values)} {cases} END)"


def generate(url: str, scale: float) -> dict:
    engine = get_engine(url)
    sql = Sql(engine.dialect.name)
    n = max(1000, int(1_000_000 * scale))
    with session_scope(url) as s:
        ws = Workspace(slug="bench", name="Bench")
        s.add(ws)
        s.flush()
        # The big campaign 10 days ago, six others over the year (one inside 30 days).
        starts = [10, 300, 250, 200, 150, 100, 20]
        camps = []
        for i, days in enumerate(starts):
            c = Campaign(workspace_id=ws.id, name=f"Campaign {i}", status="sent")
            s.add(c)
            s.flush()
            camps.append((c.id, days))
        ws_id = ws.id
    event_tables = [Base.metadata.tables["event"], Base.metadata.tables["message"]]
    with engine.begin() as conn:
        if sql.pg:
            conn.execute(text("SET maintenance_work_mem = '512MB'"))
            # Bulk load: no foreign-key triggers (the generated rows are consistent).
            conn.execute(text("SET session_replication_role = replica"))
            conn.execute(text("ALTER TABLE event DROP CONSTRAINT uq_event_dedupe_key"))
            for table in event_tables:
                for index in table.indexes:
                    index.drop(conn)
        for cid, days in camps:
            conn.execute(
                text(
                    f"UPDATE campaign SET started_at = {sql.ago(str(days))}, "
                    f"finished_at = {sql.ago(str(days), '-3600')} WHERE id = {cid}"
                )
            )
        conn.execute(
            text(
                "INSERT INTO contact (workspace_id, email, status, created_at, updated_at) "
                f"{sql.series(n)} SELECT {ws_id}, 'c' || x || '@' || {sql.pick(DOMAINS, 'x')}, "
                "CASE WHEN x % 50 = 0 THEN 'unsubscribed' ELSE 'subscribed' END, "
                f"{sql.ago('x % 400', 'x % 86400')}, {sql.ago('x % 400')} FROM g"
            )
        )
        for i, (cid, days) in enumerate(camps):
            audience = "" if i == 0 else f"WHERE id % 2 = {i % 2}"
            conn.execute(
                text(
                    "INSERT INTO message (workspace_id, campaign_id, contact_id, email, status, "
                    "sent_at, queued_at, attempts) "
                    f"SELECT {ws_id}, {cid}, id, email, "
                    "CASE WHEN id % 997 = 0 THEN 'failed' ELSE 'sent' END, "
                    f"{sql.ago(str(days), '-(id % 3600)')}, {sql.ago(str(days))}, 1 "
                    f"FROM contact {audience}"
                )
            )
        cols = (
            "workspace_id, campaign_id, message_id, contact_id, type, occurred_at, created_at, "
            "source, url, bounce_type, is_machine, dedupe_key"
        )
        delivered = "(m.id * 7919) % 100 >= 3"
        kinds = [
            ("sent", "0", "'ses'", "NULL", "NULL", ":f", "TRUE"),
            ("delivered", "5", "'ses'", "NULL", "NULL", ":f", delivered),
            (
                "bounce",
                "20",
                "'ses'",
                "NULL",
                "CASE WHEN m.id % 3 = 0 THEN 'hard' ELSE 'soft' END",
                ":f",
                "NOT " + delivered,
            ),
            (
                "open",
                "60 + (m.id * 7) % 172800",
                "'own'",
                "NULL",
                "NULL",
                ":f",
                f"{delivered} AND (m.id * 104729) % 100 < 35",
            ),
            (
                "open",
                "600 + (m.id * 11) % 400000",
                "'own'",
                "NULL",
                "NULL",
                ":f",
                f"{delivered} AND (m.id * 104729) % 100 < 15",
            ),
            (
                "open",
                "2",
                "'own'",
                "NULL",
                "NULL",
                ":t",
                f"{delivered} AND (m.id * 104729) % 100 BETWEEN 35 AND 44",
            ),
            (
                "click",
                "120 + (m.id * 7) % 172800",
                "'own'",
                sql.pick(LINKS, "m.id"),
                "NULL",
                ":f",
                f"{delivered} AND (m.id * 15485863) % 100 < 12",
            ),
            (
                "complaint",
                "3600",
                "'ses'",
                "NULL",
                "NULL",
                ":f",
                f"{delivered} AND m.id % 1000 = 1",
            ),
            (
                "unsubscribe",
                "7200",
                "'own'",
                "NULL",
                "NULL",
                ":f",
                f"{delivered} AND m.id % 500 = 2",
            ),
        ]
        for k, (type_, delay, source, url_expr, bounce, machine, where) in enumerate(kinds):
            at = sql.plus("m.sent_at", delay)
            conn.execute(
                text(
                    f"INSERT INTO event ({cols}) SELECT m.workspace_id, m.campaign_id, m.id, "
                    f"m.contact_id, '{type_}', {at}, {at}, {source}, {url_expr}, {bounce}, "
                    f"{machine}, '{k}:' || m.id FROM message m "
                    f"WHERE m.status = 'sent' AND {where}"
                ),
                {"f": False, "t": True},
            )
        if sql.pg:
            conn.execute(
                text("ALTER TABLE event ADD CONSTRAINT uq_event_dedupe_key UNIQUE (dedupe_key)")
            )
            for table in event_tables:
                for index in table.indexes:
                    index.create(conn)
    if sql.pg:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    with engine.connect() as conn:
        events = conn.execute(text("SELECT count(*) FROM event")).scalar()
        messages = conn.execute(text("SELECT count(*) FROM message")).scalar()
    return {
        "workspace_id": ws_id,
        "big_campaign": camps[0][0],
        "contacts": n,
        "messages": messages,
        "events": events,
    }


def existing(url: str) -> dict:
    with session_scope(url) as s:
        ws = s.scalar(select(Workspace.id).where(Workspace.slug == "bench"))
        big = s.scalar(select(func.min(Campaign.id)).where(Campaign.workspace_id == ws))
        return {
            "workspace_id": ws,
            "big_campaign": big,
            "contacts": s.scalar(select(func.count()).select_from(Contact)),
            "messages": s.scalar(select(func.count()).select_from(Message)),
            "events": s.scalar(select(func.count()).select_from(Event)),
        }


def add_events(url: str, ws_id: int, campaign_id: int, n: int) -> None:
    engine = get_engine(url)
    sql = Sql(engine.dialect.name)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO event (workspace_id, campaign_id, message_id, contact_id, type, "
                "occurred_at, created_at, source, is_machine, dedupe_key) "
                f"SELECT workspace_id, campaign_id, id, contact_id, 'open', "
                f"{sql.ago('0', '600')}, {sql.ago('0', '600')}, 'own', :f, '{uuid.uuid4().hex[:8]}:' || id "
                f"FROM message WHERE campaign_id = {campaign_id} AND id % 7 = 3 "
                f"ORDER BY id LIMIT {n}"
            ),
            {"f": False},
        )


def add_live_tail(url: str, ws_id: int, big: int, n: int = 5000) -> None:
    """After the last build: 10,000 opens of the big campaign and a campaign just sent to
    `n` contacts with its events."""
    add_events(url, ws_id, big, 10_000)
    engine = get_engine(url)
    sql = Sql(engine.dialect.name)
    with session_scope(url) as s:
        c = Campaign(workspace_id=ws_id, name="Just sent", status="sent")
        s.add(c)
        s.flush()
        cid = c.id
    tag = uuid.uuid4().hex[:8]
    with engine.begin() as conn:
        conn.execute(
            text(
                f"UPDATE campaign SET started_at = {sql.ago('0', '900')}, "
                f"finished_at = {sql.ago('0', '600')} WHERE id = {cid}"
            )
        )
        conn.execute(
            text(
                "INSERT INTO message (workspace_id, campaign_id, contact_id, email, status, "
                f"sent_at, queued_at, attempts) SELECT {ws_id}, {cid}, id, email, 'sent', "
                f"{sql.ago('0', '800')}, {sql.ago('0', '900')}, 1 FROM contact "
                f"WHERE workspace_id = {ws_id} ORDER BY id DESC LIMIT {n}"
            )
        )
        for k, (type_, where, extra) in enumerate(
            [
                ("delivered", "id % 50 <> 0", "NULL"),
                ("bounce", "id % 50 = 0", "CASE WHEN id % 100 = 0 THEN 'hard' ELSE 'soft' END"),
                ("open", "id % 3 = 0", "NULL"),
                ("complaint", "id % 1000 = 7", "NULL"),
                ("unsubscribe", "id % 200 = 9", "NULL"),
            ]
        ):
            conn.execute(
                text(
                    "INSERT INTO event (workspace_id, campaign_id, message_id, contact_id, type, "
                    "occurred_at, created_at, source, bounce_type, is_machine, dedupe_key) "
                    f"SELECT workspace_id, campaign_id, id, contact_id, '{type_}', "
                    f"{sql.ago('0', '700')}, {sql.ago('0', '700')}, "
                    f"'{'own' if type_ in ('open', 'unsubscribe') else 'ses'}', {extra}, :f, "
                    f"'{tag}-{k}:' || id FROM message WHERE campaign_id = {cid} AND {where}"
                ),
                {"f": False},
            )


def timed(fn, repeat: int = 3) -> tuple[float, float]:
    """(first run, median of `repeat` more) in seconds."""
    t = time.perf_counter()
    fn()
    first = time.perf_counter() - t
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return first, statistics.median(runs)


def speed_of_reads(url: str, info: dict, me: Actor) -> dict:
    """The rollups, the dashboard and the biggest campaign's report, timed."""
    t = time.perf_counter()
    full = rollups.build_rollups(url=url, lag_seconds=0)
    rollup_full = time.perf_counter() - t
    print(
        f"rollup (full): {rollup_full:.2f} s, tables {full.tables}, stages {full.stages}",
        flush=True,
    )
    add_events(url, info["workspace_id"], info["big_campaign"], 10_000)
    t = time.perf_counter()
    inc = rollups.build_rollups(url=url, lag_seconds=0)
    rollup_inc = time.perf_counter() - t
    print(
        f"rollup (incremental, {inc.events_read} new events, {inc.messages_read} messages "
        f"re-read): {rollup_inc:.2f} s, stages {inc.stages}"
    )

    big = info["big_campaign"]

    def dashboard() -> None:
        with session_scope(url) as s:
            analytics.dashboard(s, me)

    def report() -> None:
        with session_scope(url) as s:
            report = analytics.campaign_report(s, me, big)
            analytics.recipients_page(s, me, big, known_total=report.figures.recipients)

    def figures() -> None:
        with session_scope(url) as s:
            analytics.campaign_figures(s, me, big)

    _, dash_built_s = timed(dashboard)
    with session_scope(url) as s:
        before = analytics.dashboard(s, me)
    add_live_tail(url, info["workspace_id"], big)
    with session_scope(url) as s:
        mark = rollups.rollup_status()["events_max_id"]
        tail = s.scalar(select(func.count()).select_from(Event).where(Event.id > mark))
    dash_first, dash_s = timed(dashboard)
    with session_scope(url) as s:
        after = analytics.dashboard(s, me)
    print(
        f"dashboard sent all time {before.sent_all_time:,} -> {after.sent_all_time:,} "
        f"({tail:,} events beyond the high-water mark #{mark:,})"
    )
    rep_first, rep_s = timed(report)
    _, fig_s = timed(figures)
    with session_scope(url) as s:
        f = analytics.campaign_figures(s, me, big)
        recipients = f.recipients
        name = s.scalar(select(Campaign.name).where(Campaign.id == big))
    print(
        f"dashboard with the live tail: first {dash_first:.3f} s, median {dash_s:.3f} s "
        f"(right after a build: {dash_built_s:.3f} s)"
    )
    print(
        f"report of {name!r} ({recipients:,} recipients): first {rep_first:.3f} s, "
        f"median {rep_s:.3f} s (figures alone {fig_s:.3f} s)"
    )
    return {
        "big_campaign_recipients": recipients,
        "rollup_full_s": round(rollup_full, 2),
        "rollup_incremental_s": round(rollup_inc, 2),
        "dashboard_s": round(dash_s, 3),
        "dashboard_first_s": round(dash_first, 3),
        "dashboard_built_s": round(dash_built_s, 3),
        "dashboard_tail_events": tail,
        "report_s": round(rep_s, 3),
        "report_first_s": round(rep_first, 3),
        "report_figures_s": round(fig_s, 3),
        "rollup_vs_goal_60s": round(rollup_full / 60, 3),
        "dashboard_vs_goal_1s": round(dash_s / 1, 3),
        "report_vs_goal_1s": round(rep_s / 1, 3),
        "incremental_vs_full": round(rollup_inc / rollup_full, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=0.02)
    parser.add_argument(
        "--pg", default="", help="PostgreSQL admin URL: bench in a scratch database"
    )
    parser.add_argument("--url", default="", help="reuse a database generated with --keep")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--sunset-campaigns", type=int, default=3)
    parser.add_argument("--sunset-days", type=int, default=120)
    parser.add_argument(
        "--sunset-only", action="store_true", help="generate, then only the sunset recompute"
    )
    args = parser.parse_args()

    scratch = ""
    if args.url:
        url = args.url
    elif args.pg:
        scratch = f"mw_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{scratch}"'))
        url = make_url(args.pg).set(database=scratch).render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{settings.data_dir / 'bench.db'}"
    settings.rollup_path = Path(settings.data_dir) / "rollups.duckdb"
    try:
        t = time.perf_counter()
        if args.url:
            info = existing(url)
        else:
            migrate(url)
            info = generate(url, args.scale)
        gen_s = time.perf_counter() - t
        print(f"generated {info} in {gen_s:.1f} s", flush=True)

        me = Actor.system(info["workspace_id"])
        if args.sunset_only:
            figures: dict = {}
        else:
            figures = speed_of_reads(url, info, me)
        with session_scope(url) as s:
            sunset.save_policy(
                s,
                me,
                enabled=True,
                min_campaigns=args.sunset_campaigns,
                min_days=args.sunset_days,
            )

        def sunset_run() -> dict:
            with session_scope(url) as s:
                return sunset.recompute(s, info["workspace_id"])

        t = time.perf_counter()
        marked = sunset_run()
        sunset_first = time.perf_counter() - t
        _, sunset_s = timed(sunset_run, repeat=2)
        print(
            f"sunset recompute ({args.sunset_campaigns} campaigns over {args.sunset_days} "
            f"days): first {sunset_first:.2f} s marking {marked['inactive']:,} inactive, "
            f"then {sunset_s:.2f} s"
        )
        load = [round(x, 2) for x in os.getloadavg()]
        print(f"load average {load}")
        print(
            json.dumps(
                {
                    "database": make_url(url).get_backend_name(),
                    "scale": round(info["contacts"] / 1_000_000, 3),
                    "contacts": info["contacts"],
                    "messages": info["messages"],
                    "events": info["events"],
                    "generate_s": round(gen_s, 1),
                    **figures,
                    "sunset_first_s": round(sunset_first, 2),
                    "sunset_s": round(sunset_s, 2),
                    "sunset_inactive": marked["inactive"],
                    "sunset_vs_goal_10s": round(max(sunset_first, sunset_s) / 10, 3),
                    "loadavg": load,
                }
            )
        )
    finally:
        dispose_all()
        if args.keep and scratch:
            print(f"kept {url}")
        elif scratch:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
