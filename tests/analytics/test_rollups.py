"""DuckDB rollups: tables against the SQL database's own aggregates, incrementality, the
swap under a reader, and the Data page's query guard."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import duckdb
import pytest
from sqlalchemy import insert

from core.analytics import reports as analytics
from core.analytics import rollups
from core.infra.db import session_scope
from core.infra.permissions import Actor
from core.models import Event
from tests.analytics.dataset import LINK_A, LINK_B, T0, build_known, event_rows, other_workspace
from tests.helpers import make_workspace
from tests.processes import PROCESS_BACKEND


@pytest.fixture
def rollup_file(tmp_path, monkeypatch):
    from core.infra.config import settings

    path = tmp_path / "rollups.duckdb"
    monkeypatch.setattr(settings, "rollup_path", path)
    return path


@pytest.fixture
def world(live_db):
    with session_scope() as session:
        known = build_known(session, make_workspace(session).id)
        other = other_workspace(session)
    return known, other


def _rows(path, sql, params=()):
    with rollups.open_rollups(path) as con:
        cur = con.execute(sql, list(params))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def test_tables_match_the_sql_report(world, rollup_file):
    known, other = world
    result = rollups.build_rollups(lag_seconds=0)
    assert set(result.tables) == set(rollups.TABLES)
    rows = {
        r["campaign_id"]: r
        for r in _rows(
            rollup_file, "SELECT * FROM r.campaigns WHERE workspace_id = ?", [known.workspace_id]
        )
    }
    assert set(rows) == {known.campaign_id, known.idle_campaign_id, known.smtp_campaign_id}
    with session_scope() as session:
        me = Actor.system(known.workspace_id)
        for cid, row in rows.items():
            live = analytics.campaign_figures(session, me, cid, use_rollups=False).as_row()
            for key in analytics.CampaignFigures.__dataclass_fields__:
                if key in row and key not in ("started_at", "finished_at"):
                    assert row[key] == pytest.approx(live[key]), (cid, key)
            for key in analytics.RATE_DEFINITIONS:
                assert row[key] == pytest.approx(live[key]), (cid, key)
        links = analytics.top_links(session, me, known.campaign_id, use_rollups=False)
    rolled = _rows(
        rollup_file,
        "SELECT url, unique_clicks, total_clicks FROM r.link_clicks WHERE campaign_id = ? "
        "ORDER BY unique_clicks DESC, url",
        [known.campaign_id],
    )
    assert [(x["url"], x["unique_clicks"], x["total_clicks"]) for x in rolled] == [
        (x.url, x.unique_clicks, x.total_clicks) for x in links
    ]
    hourly = _rows(
        rollup_file,
        "SELECT sum(opens) AS opens, sum(clicks) AS clicks, sum(delivered) AS delivered "
        "FROM r.campaign_hourly WHERE campaign_id = ?",
        [known.campaign_id],
    )[0]
    assert (hourly["opens"], hourly["clicks"], hourly["delivered"]) == (5, 4, 7)
    domains = _rows(
        rollup_file,
        "SELECT sum(recipients) AS n, sum(delivered) AS d FROM r.campaign_domains "
        "WHERE campaign_id = ?",
        [known.campaign_id],
    )[0]
    assert (domains["n"], domains["d"]) == (10, 7)
    daily = _rows(
        rollup_file,
        "SELECT sum(sent) AS sent, sum(complaints) AS c FROM r.workspace_daily WHERE workspace_id = ?",
        [known.workspace_id],
    )[0]
    assert (daily["sent"], daily["c"]) == (11, 1)  # 9 + 2 over SMTP
    growth = _rows(
        rollup_file,
        "SELECT max(cumulative_contacts) AS total, sum(lost_contacts) AS lost "
        "FROM r.contact_growth_daily WHERE workspace_id = ?",
        [known.workspace_id],
    )[0]
    # lost: unsubscribed (message 3), complained (6), hard-bounced (7)
    assert (growth["total"], growth["lost"]) == (14, 3)


def test_incremental_reads_only_new_events(world, rollup_file):
    known, _ = world
    first = rollups.build_rollups(lag_seconds=0)
    again = rollups.build_rollups(lag_seconds=0)
    assert again.events_read == 0 and again.events_total == first.events_total
    # Finished campaigns keep their messages; the two still sending (2 each) are re-read.
    assert first.messages_read == 28 and again.messages_read == 4
    # Two new human opens (one by a new opener) arrive; one is "young" (just committed).
    with session_scope() as session:
        new = event_rows(
            known.workspace_id, known.campaign_id, known.message_ids, known.contact_ids
        )
        opens = [e for e in new if e["type"] == "open" and not e.get("is_machine")]
        a, b = dict(opens[0]), dict(opens[0])
        a.update(dedupe_key="new-a", occurred_at=T0 + timedelta(hours=6), created_at=T0)
        b.update(
            dedupe_key="new-b",
            message_id=known.message_ids[5],
            contact_id=known.contact_ids[5],
            occurred_at=T0 + timedelta(hours=7),
        )
        b.pop("created_at")  # created now: still inside the lag window
        session.execute(insert(Event), [a, b])
    third = rollups.build_rollups(lag_seconds=600)
    assert third.events_read == 2
    fourth = rollups.build_rollups(lag_seconds=600)
    assert fourth.events_read == 1, "the young event is read again, never counted twice"
    row = _rows(
        rollup_file,
        "SELECT unique_opens, total_opens FROM r.campaigns WHERE campaign_id = ?",
        [known.campaign_id],
    )[0]
    assert (row["unique_opens"], row["total_opens"]) == (4, 7)
    full = rollups.build_rollups(full=True, lag_seconds=0)
    assert full.events_read == full.events_total == first.events_total + 2


READER = """
import duckdb, sys
con = duckdb.connect(sys.argv[1], read_only=True)
print(con.execute("SELECT count(*) FROM link_clicks WHERE url = ?", [sys.argv[2]]).fetchall()[0][0], flush=True)
sys.stdin.readline()
print(con.execute("SELECT count(*) FROM link_clicks WHERE url = ?", [sys.argv[2]]).fetchall()[0][0], flush=True)
"""


def test_rebuild_while_a_reader_holds_the_file(world, rollup_file):
    known, _ = world
    rollups.build_rollups(lag_seconds=0)
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(rollup_file), "https://example.com/new"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "0"
        with session_scope() as session:
            click = {
                "workspace_id": known.workspace_id,
                "campaign_id": known.campaign_id,
                "message_id": known.message_ids[1],
                "contact_id": known.contact_ids[1],
                "type": "click",
                "url": "https://example.com/new",
                "occurred_at": T0 + timedelta(hours=9),
                "created_at": T0,
                "dedupe_key": "during-read",
            }
            session.execute(insert(Event), [click])
        # The reader holds the old file open: the rebuild neither waits nor fails.
        rollups.build_rollups(lag_seconds=0)
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "0", "the open reader keeps its snapshot"
    finally:
        reader.stdin.close()
        reader.wait(timeout=30)
    with duckdb.connect(str(rollup_file), read_only=True) as con:
        assert con.execute(
            "SELECT count(*) FROM link_clicks WHERE url = ?", ["https://example.com/new"]
        ).fetchall() == [(1,)]
    assert not list(rollup_file.parent.glob(".*.tmp"))
    busy = rollups.base._exclusive(rollup_file, wait=False)
    with busy, pytest.raises(rollups.RollupBusy):
        rollups.build_rollups()


def test_data_queries_are_read_only_and_scoped(world, rollup_file, tmp_path):
    known, other = world
    rollups.build_rollups(lag_seconds=0)
    ws = known.workspace_id
    result = rollups.workspace_query(ws, "SELECT DISTINCT workspace_id FROM campaigns")
    assert result.rows == [(ws,)]
    for table in rollups.TABLES:
        if table != "rollup_info":
            got = rollups.workspace_query(
                ws, f"SELECT count(*) FROM {table} WHERE workspace_id <> {ws}"
            )
            assert got.rows == [(0,)], table
    for sql in (
        "DELETE FROM campaigns",
        "DROP TABLE campaigns",
        "CREATE TABLE x AS SELECT 1",
        "SELECT 1; DELETE FROM campaigns",
        f"ATTACH '{rollup_file}' AS again",
        f"COPY campaigns TO '{tmp_path / 'out.csv'}'",
        "SET enable_external_access = true",
        f"SELECT * FROM read_csv('{tmp_path / 'x.csv'}')",
        "SELECT * FROM r.campaigns",
    ):
        with pytest.raises(rollups.QueryRefused):
            rollups.workspace_query(ws, sql)
    assert not (tmp_path / "out.csv").exists()
    limited = rollups.workspace_query(ws, "SELECT * FROM range(5000)", row_limit=100)
    assert len(limited.rows) == 100 and limited.truncated
    with pytest.raises(rollups.QueryRefused, match="longer than"):
        rollups.workspace_query(
            ws, "SELECT count(*) FROM range(100000000) a, range(1000000) b", time_limit=0.5
        )
    examples = [rollups.workspace_query(ws, sql) for sql in rollups.EXAMPLE_QUERIES.values()]
    assert examples[2].rows[0][0] == LINK_A

    exported = tmp_path / "mine.duckdb"
    exported.write_bytes(rollups.export_workspace(ws))
    with duckdb.connect(str(exported), read_only=True) as con:
        assert con.execute("SELECT DISTINCT workspace_id FROM campaigns").fetchall() == [(ws,)]
        assert con.execute("SELECT count(*) FROM link_clicks").fetchall() == [(2,)]


def test_dashboard_trends_read_the_rollups(world, rollup_file):
    known, _ = world
    from core.infra import clock

    clock.freeze(T0 + timedelta(days=3))
    with session_scope() as session:
        me = Actor.system(known.workspace_id)
        before = analytics.dashboard(session, me)
        # Live before the first build (tests/analytics/test_dashboard.py has the rest).
        assert not before.has_rollups and before.sent_30d == 11 and before.subscribed == 14
        rollups.build_rollups(lag_seconds=0)
        data = analytics.dashboard(session, me)
    assert data.has_rollups
    assert (data.sent_30d, data.sent_all_time) == (11, 11)
    assert data.subscribed_change_30d == 14 - 3
    assert data.avg_open_rate == pytest.approx((3 / 7 + 0) / 2)  # main and SMTP campaign
    assert data.health.bounce_rate == pytest.approx(3 / 11)  # 3 bounce events over 11 sent
    assert any("SES pause" in w for w in data.health.warnings)
    assert [c.id for c in data.recent][0] == known.smtp_campaign_id


# A process boundary: one backend (PostgreSQL when TEST_DATABASE_URL is set); the SQL
# behind it runs on both in this package's in-process tests.
@pytest.mark.parametrize("backend", [PROCESS_BACKEND])
def test_cli_and_beat_task(world, live_db, rollup_file, tmp_path):
    import json

    from tests.test_cli import run_cli

    done = run_cli(tmp_path, live_db, "rollup")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["tables"]["campaigns"] == 6 and (tmp_path / "rollups.duckdb").exists()

    from worker.celery_app import app
    from worker.tasks_analytics import build_rollups_task

    entry = app.conf.beat_schedule["analytics-rollups"]
    assert entry["task"] == build_rollups_task.name
    assert entry["schedule"] == 300.0
    # Same file as the CLI built (DATA_DIR is tmp_path): its state already holds every event.
    assert build_rollups_task.run()["events_read"] == 0
    assert rollup_file.exists()


def test_report_from_rollups_plus_newer_events_equals_the_live_count(world, rollup_file):
    known, _ = world
    rollups.build_rollups(lag_seconds=0)
    m, c = known.message_ids, known.contact_ids

    def ev(i, type_, hours, **extra):
        return {
            "workspace_id": known.workspace_id,
            "campaign_id": known.campaign_id,
            "message_id": m[i],
            "contact_id": c[i],
            "type": type_,
            "occurred_at": T0 + timedelta(hours=hours),
            "dedupe_key": f"late-{i}-{type_}-{hours}",
            "source": "own" if type_ in ("open", "click") else "ses",
            **extra,
        }

    with session_scope() as session:
        session.execute(
            insert(Event),
            [
                ev(7, "delivered", 1),  # soft-bounced, then delivered: a new delivery
                ev(0, "delivered", 2),  # a repeated delivery: not a new one
                ev(0, "open", 1.5),  # a repeat opener
                ev(5, "open", 60),  # a new opener, days later
                ev(4, "open", 1, is_machine=True),
                ev(1, "click", 2.5, url=LINK_B),  # a clicker on a link new to them
                ev(3, "click", 4, url="https://example.com/c"),  # a new clicker
                ev(0, "click", 4, url=LINK_A),  # a repeat click
            ],
        )
    with session_scope() as session:
        me = Actor.system(known.workspace_id)
        key = rollups.source_key(session.get_bind().engine.url)
        assert rollups.campaign_snapshot(known.workspace_id, known.campaign_id, key) is not None
        cid = known.campaign_id
        fast = analytics.campaign_figures(session, me, cid)
        slow = analytics.campaign_figures(session, me, cid, use_rollups=False)
        assert fast.as_row() == slow.as_row()
        assert (slow.delivered, slow.unique_opens, slow.total_opens) == (8, 4, 7)
        assert (slow.machine_opens, slow.unique_clicks, slow.total_clicks) == (2, 3, 7)
        assert analytics.campaign_timeline(session, me, cid) == analytics.campaign_timeline(
            session, me, cid, use_rollups=False
        )
        assert analytics.top_links(session, me, cid) == analytics.top_links(
            session, me, cid, use_rollups=False
        )
        # Another database's rollups are never used.
        assert rollups.campaign_snapshot(known.workspace_id, cid, "someone-else") is None


def test_a_runaway_data_query_is_stopped_by_its_limits_and_says_which(
    world, rollup_file, monkeypatch
):
    from core.infra.config import settings

    known, _other = world
    rollups.build_rollups(lag_seconds=0)
    ws = known.workspace_id
    # One scalar expression: DuckDB's interrupt() cannot stop it; killing the child can.
    with pytest.raises(rollups.QueryRefused, match="time limit"):
        rollups.workspace_query(
            ws,
            "SELECT length(regexp_replace(repeat('a', 100000000), 'a', 'bb', 'g'))",
            time_limit=0.5,
        )
    monkeypatch.setattr(settings, "data_query_memory_mb", 256)
    with pytest.raises(rollups.QueryRefused, match="memory limit"):
        rollups.workspace_query(ws, "SELECT length(repeat('a', 3000000000))", time_limit=30)
    # The app goes on: the next query answers.
    assert rollups.workspace_query(ws, "SELECT 1").rows == [(1,)]
