"""Automation speed (issue 18): enrollments walking send → wait 0 → branch → send to the
outbox through 2 real Celery workers, against bench/send.py's campaign rate for the same
number of mails measured in the same run; and beat's due scan at 1M waiting enrollments.

    .venv/bin/python bench/automations.py                    # 20,000 enrollments, SQLite
    .venv/bin/python bench/automations.py --scale 1          # 100,000 (200,000 mails)
    .venv/bin/python bench/automations.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres \
        --redis redis://127.0.0.1:6379/11                    # PostgreSQL + Redis broker,
                                                             # and the 1M due scan
    .venv/bin/python bench/automations.py --pg URL --scan-only   # only the 1M due scan

The campaign goes to twice as many recipients as there are enrollments (each enrollment
sends two mails), through bench/send.py's own `end_to_end` on the same database, broker,
transport and workers' settings. The automation is started the way beat starts it: one
`advance` task; the engine asks for a second one itself when there is more due than one
batch, so both workers take part. `--redis` uses that Redis database as the broker and
empties it first (give it a database nobody else uses).

Prints its figures, and as its last line one JSON object of headline figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# bench/send.py first: importing it sets the environment (a temporary DATA_DIR, SQLite).
import send as campaign_bench
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from core.automations import create_automation
from core.automations.engine import claim_due, due_query
from core.automations.enrollment import enroll_from_lists
from core.automations.service import exit_unsubscribed
from core.infra import clock, jobs
from core.infra.config import settings
from core.infra.db import dispose_all, get_sessionmaker, session_scope
from core.infra.migrate import migrate
from core.models import ContactList, Enrollment, Message, Template
from tests.helpers import actor_of, make_user, make_workspace
from tests.processes import process_env, start_worker, wait_until

DATA = campaign_bench.DATA
ADVANCE_TASK = "worker.tasks_automations.advance"


def _series(pg: bool) -> str:
    if pg:
        return "SELECT g AS x FROM generate_series(1, :n) g"
    return (
        "WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq WHERE x < :n) "
        "SELECT x FROM seq"
    )


def _definition(welcome: int, tips: int, offer: int) -> dict:
    return {
        "name": "Welcome series",
        "trigger": {"type": "list_joined", "list": "Newsletter"},
        "steps": [
            {"send": {"template_id": welcome}},
            {"wait": {"minutes": 0}},
            {
                "branch": {
                    "if": {"opened": "previous"},
                    "then": [{"send": {"template_id": tips}}],
                    "else": [{"send": {"template_id": offer}}],
                }
            },
        ],
    }


def seed_automation(url: str, contacts: int, *, join: bool = True) -> tuple[int, int, int]:
    """A workspace with the welcome series (active) and `contacts` subscribed contacts; with
    `join`, they join its list after it was activated (beat's next pass enrolls them).
    Returns (workspace id, automation id, list id)."""
    with session_scope(url) as s:
        ws = make_workspace(
            s,
            f"auto-{uuid.uuid4().hex[:6]}",
            from_email="news@acme.io",
            from_name="Acme",
            max_send_rate=1e5,
        )
        actor = actor_of(make_user(s, ws))
        templates = []
        for name in ("Welcome", "Tips", "Offer"):
            t = Template(workspace_id=ws.id, name=name, subject=name + " {{ first_name }}")
            t.html = campaign_bench.HTML
            templates.append(t)
        lst = ContactList(workspace_id=ws.id, name="Newsletter")
        s.add_all([*templates, lst])
        s.flush()
        automation = create_automation(s, actor, _definition(*(t.id for t in templates)))
        ws_id, automation_id, list_id = ws.id, automation.id, lst.id
    with session_scope(url) as s:
        pg = s.get_bind().dialect.name == "postgresql"
        s.execute(
            text(
                "INSERT INTO contact (workspace_id, email, first_name, last_name, company, city,"
                " country, phone, custom_fields, status, source, created_at, updated_at) "
                "SELECT :ws, 'a' || x || '@example.com', 'First' || x, 'Last',"
                " 'Company ' || (x % 97), 'City', 'DE', '', '{}', 'subscribed', 'bench',"
                f" CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM ({_series(pg)}) AS seq_rows"
            ),
            {"ws": ws_id, "n": contacts},
        )
        if join:
            s.execute(
                text(
                    "INSERT INTO list_membership (list_id, contact_id, created_at) "
                    "SELECT :l, id, :now FROM contact WHERE workspace_id = :ws"
                ),
                {"l": list_id, "ws": ws_id, "now": clock.now()},
            )
    return ws_id, automation_id, list_id


def automation_run(url: str, enrollments: int, workers: int, env_extra: dict) -> dict:
    """The series for `enrollments` contacts through `workers` real workers (no beat: the
    bench starts the pass, timed, as beat's tick would)."""
    _, automation_id, _ = seed_automation(url, enrollments)
    outbox = DATA / "outbox-automation"
    env = process_env(
        DATA,
        url,
        SEND_TICK_SECONDS="3600",
        SEND_BATCH_SIZE="500",
        OUTBOX_DIR=str(outbox),
        **env_extra,
    )
    procs = [
        start_worker(env, DATA / f"auto{i}.log", concurrency=1, name=f"a{i}")
        for i in range(workers)
    ]

    def counts() -> tuple[int, int]:
        with session_scope(url) as s:
            rows = dict(
                s.execute(
                    select(Enrollment.status, func.count())
                    .where(Enrollment.automation_id == automation_id)
                    .group_by(Enrollment.status)
                ).all()
            )
        return int(sum(rows.values())), int(rows.get("active", 0))

    try:
        started = time.perf_counter()
        jobs.enqueue(None, ADVANCE_TASK)
        wait_until(lambda: counts()[0] == enrollments, 600, "everyone enrolled")
        enrolled_s = time.perf_counter() - started
        # A pass ends after SEND_BATCH_SECONDS; beat would start the next one at its tick.
        # Here the bench asks for the next pass itself whenever the workers fall idle.
        last = time.monotonic()
        while counts()[1]:
            time.sleep(0.2)
            if time.monotonic() - last > settings.send_batch_seconds:
                jobs.enqueue(None, ADVANCE_TASK)
                last = time.monotonic()
        elapsed = time.perf_counter() - started
    finally:
        for p in procs:
            p.stop()
    with session_scope(url) as s:
        by_step = dict(
            s.execute(
                select(Message.step_path, func.count())
                .where(Message.automation_id == automation_id, Message.status == "sent")
                .group_by(Message.step_path)
            ).all()
        )
        attempts = s.scalar(
            select(func.sum(Message.attempts)).where(Message.automation_id == automation_id)
        )
    sent = int(sum(by_step.values()))
    files = len(os.listdir(outbox / "new"))
    return {
        "enrollments": enrollments,
        "mails": sent,
        "by_step": by_step,
        "claims": int(attempts or 0),
        "files": files,
        "enrolled_after_s": round(enrolled_s, 2),
        "seconds": round(elapsed, 2),
        "mails_per_s": round(sent / elapsed, 1),
    }


def _fresh_pg(pg_admin: str) -> tuple[str, str]:
    name = f"mw_bench_auto_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_admin, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name, make_url(pg_admin).set(database=name).render_as_string(hide_password=False)


def _drop_pg(pg_admin: str, name: str) -> None:
    dispose_all()
    admin = create_engine(pg_admin, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def due_scan(url: str, waiting: int, due: int) -> dict:
    """Beat's pass over `waiting` enrollments sitting in a 3-day wait and `due` that are
    due: the claim query (EXPLAIN ANALYZE and a real claim), the exit of unsubscribed
    contacts and the enrollment of new list members, each timed: the first pass (no
    high-water mark yet: it reads every member and every gone contact) and the next one,
    after NEXT_JOINS contacts joined and NEXT_GONE unsubscribed (what a pass usually sees).
    Everything seeded happened a day ago, so the next pass's overlap does not reach it."""
    ws_id, automation_id, list_id = seed_automation(url, waiting + due, join=False)
    with session_scope(url) as s:
        now = clock.now() - timedelta(days=1)
        s.execute(
            text("UPDATE automation SET activated_at = :t WHERE id = :a"),
            {"t": now - timedelta(hours=1), "a": automation_id},
        )
        s.execute(
            text("UPDATE contact SET created_at = :t, updated_at = :t WHERE workspace_id = :ws"),
            {"t": now - timedelta(hours=2), "ws": ws_id},  # contacts from before activation
        )
        s.execute(
            text(
                "INSERT INTO list_membership (list_id, contact_id, created_at) "
                "SELECT :l, id, :now FROM contact WHERE workspace_id = :ws"
            ),
            {"l": list_id, "ws": ws_id, "now": now},
        )
        # Everyone enrolled; the first `due` are due now, the rest wait at step 1 for days.
        s.execute(
            text(
                "INSERT INTO enrollment (automation_id, workspace_id, contact_id, generation,"
                " status, reason, step_path, entered_step_at, due_at, attempts, created_at) "
                "SELECT :a, :ws, c.id, 1, 'active', '',"
                " CASE WHEN r.n <= :due THEN '0' ELSE '1' END, :now,"
                " CASE WHEN r.n <= :due THEN :now ELSE :later END, 0, :now"
                " FROM contact c JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n"
                " FROM contact WHERE workspace_id = :ws) r ON r.id = c.id"
            ),
            {
                "a": automation_id,
                "ws": ws_id,
                "due": due,
                "now": now,
                "later": now + timedelta(days=3),
            },
        )
        # 2% of them unsubscribed long ago and left already, as beat's pass leaves them.
        s.execute(
            text(
                "UPDATE contact SET status = 'unsubscribed' WHERE workspace_id = :ws"
                " AND id % 50 = 0"
            ),
            {"ws": ws_id},
        )
        s.execute(
            text(
                "UPDATE enrollment SET status = 'exited', reason = 'unsubscribed', due_at = NULL"
                " WHERE contact_id % 50 = 0 AND automation_id = :a"
            ),
            {"a": automation_id},
        )
    pg = url.startswith("postgresql")
    if pg:
        vacuum = create_engine(url, isolation_level="AUTOCOMMIT")
        with vacuum.connect() as c:
            c.execute(text("VACUUM ANALYZE"))
        vacuum.dispose()
    sessions = get_sessionmaker(url)
    figures: dict = {"enrollments": waiting + due}
    with sessions() as s:
        figures["active"] = s.scalar(select(func.count()).where(Enrollment.status == "active"))
        query = due_query(s, clock.now(), 500)
        compiled = query.compile(s.get_bind(), compile_kwargs={"literal_binds": True})
        if pg:
            plan = [r[0] for r in s.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}")).all()]
            figures["explain_execution_ms"] = float(
                next(line for line in plan if "Execution Time" in line).split()[-2]
            )
            figures["plan"] = plan
        else:
            plan = [r[-1] for r in s.execute(text(f"EXPLAIN QUERY PLAN {compiled}")).all()]
            figures["plan"] = plan
        s.rollback()
    started = time.perf_counter()
    claimed = claim_due(sessions, 500)
    figures["claim_ms"] = round((time.perf_counter() - started) * 1000, 1)
    figures["claimed"] = len(claimed)
    with sessions() as s:
        _timed_passes(s, figures, "", ("exited_now", "enrolled_now"))
        s.commit()
    _changes(url, ws_id, list_id)
    with sessions() as s:
        _timed_passes(s, figures, "next_", ("next_exited", "next_enrolled"))
        s.rollback()
    return figures


def _timed_passes(s, figures: dict, prefix: str, count_keys: tuple[str, str]) -> None:
    """Beat's exit pass, then its list-enrollment pass, each counted and timed."""
    for (name, run), key in zip(
        (("exit_unsubscribed", exit_unsubscribed), ("enroll_from_lists", enroll_from_lists)),
        count_keys,
        strict=True,
    ):
        started = time.perf_counter()
        figures[key] = run(s)
        figures[f"{prefix}{name}_ms"] = round((time.perf_counter() - started) * 1000, 1)


NEXT_JOINS, NEXT_GONE = 1000, 500


def _changes(url: str, ws_id: int, list_id: int) -> None:
    """Between two passes: NEXT_JOINS new contacts join the list, NEXT_GONE waiting contacts
    unsubscribe (stamped now, as the service stamps a status change)."""
    with session_scope(url) as s:
        pg = s.get_bind().dialect.name == "postgresql"
        now = clock.now()
        s.execute(
            text(
                "INSERT INTO contact (workspace_id, email, first_name, last_name, company, city,"
                " country, phone, custom_fields, status, source, created_at, updated_at) "
                "SELECT :ws, 'new' || x || '@example.com', 'New', '', '', '', '', '', '{}',"
                f" 'subscribed', 'bench', :now, :now FROM ({_series(pg)}) AS seq_rows"
            ),
            {"ws": ws_id, "n": NEXT_JOINS, "now": now},
        )
        s.execute(
            text(
                "INSERT INTO list_membership (list_id, contact_id, created_at) "
                "SELECT :l, id, :now FROM contact WHERE workspace_id = :ws"
                " AND email LIKE 'new%'"
            ),
            {"l": list_id, "ws": ws_id, "now": now},
        )
        s.execute(
            text(
                "UPDATE contact SET status = 'unsubscribed', updated_at = :now"
                " WHERE id IN (SELECT contact_id FROM enrollment WHERE status = 'active'"
                " AND step_path = '1' ORDER BY contact_id DESC LIMIT :gone)"
            ),
            {"now": now, "gone": NEXT_GONE},
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--scale", type=float, default=0.2, help="1.0 = 100,000 enrollments (200,000 mails)"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pg", default="", help="PostgreSQL admin URL: run there, plus the scan")
    parser.add_argument("--redis", default="", help="Redis URL for the broker (emptied first)")
    parser.add_argument("--scan-rows", type=int, default=1_000_000)
    parser.add_argument("--scan-due", type=int, default=10_000)
    parser.add_argument("--scan-only", action="store_true")
    parser.add_argument("--skip-campaign", action="store_true")
    args = parser.parse_args()
    jobs.set_dispatcher(None)
    env_extra: dict[str, str] = {}
    if args.redis:
        import redis

        redis.Redis.from_url(args.redis).flushdb()
        env_extra = {"BROKER_URL": args.redis}
        os.environ["BROKER_URL"] = settings.broker_url = args.redis
    figures: dict = {"load_before": [round(x, 2) for x in os.getloadavg()]}
    dbs: list[str] = []
    try:
        enrollments = int(100_000 * args.scale)
        if not args.scan_only:
            if args.pg:
                name, url = _fresh_pg(args.pg)
                dbs.append(name)
            else:
                url = settings.database_url
            migrate(url)
            if not args.skip_campaign:
                e2e = campaign_bench.end_to_end(
                    2 * enrollments, args.workers, url=url, env_extra=env_extra
                )
                print("campaign:", e2e)
                figures["campaign"] = e2e
            auto = automation_run(url, enrollments, args.workers, env_extra)
            print("automation:", auto)
            figures["automation"] = auto
        if args.pg:
            name, url = _fresh_pg(args.pg)
            dbs.append(name)
            migrate(url)
            scan = due_scan(url, args.scan_rows - args.scan_due, args.scan_due)
            for line in scan.pop("plan"):
                print("  ", line)
            print("due scan:", scan)
            figures["due_scan"] = scan
    finally:
        for name in dbs:
            _drop_pg(args.pg, name)
        shutil.rmtree(DATA, ignore_errors=True)
    figures["load_after"] = [round(x, 2) for x in os.getloadavg()]
    figures["database"] = "postgresql" if args.pg else "sqlite"
    if "automation" in figures:
        figures["automation_mails_per_s"] = figures["automation"]["mails_per_s"]
    if "campaign" in figures:
        figures["campaign_mails_per_s"] = figures["campaign"]["msgs_per_s"]
        figures["ratio_to_campaign"] = round(
            figures["automation_mails_per_s"] / figures["campaign_mails_per_s"], 2
        )
    if "due_scan" in figures:
        figures["due_scan_ms_1m"] = figures["due_scan"]["explain_execution_ms"]
        figures["claim_ms_1m"] = figures["due_scan"]["claim_ms"]
        for key in (
            "exit_unsubscribed_ms",
            "enroll_from_lists_ms",
            "next_exit_unsubscribed_ms",
            "next_enroll_from_lists_ms",
        ):
            figures[f"{key.removesuffix('_ms')}_ms_1m"] = figures["due_scan"][key]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
