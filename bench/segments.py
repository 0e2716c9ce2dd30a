"""Segment counts at scale: compiled rule trees against hand-written SQL for the same rules.

    python bench/segments.py [--scale 0.05] [--pg-url URL] [--skip-sqlite] [--skip-pg]

At --scale 1: PostgreSQL with 1,000,000 contacts and ~10,000,000 events, SQLite with 100,000
contacts and ~1,000,000 events (the issue's goals: every tree counts within 1 s, within 1.5x of
the hand-written query). Data is generated inside the database (deterministic), indexes are
built after the load, then ANALYZE. The hand-written SQL keeps the rules' meaning (text is
compared case-insensitively with lower(); emails and statuses are stored lower-case) but skips
the JSON type guards, as someone who knows the data would write it. Prints one line per tree and, last, a JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from core.infra.db import create_db_engine
from core.infra.migrate import migrate
from core.infra.permissions import Actor
from core.models import Campaign, ContactList, CustomField, Event, Workspace
from core.segments import count_matching, matching_query

CUSTOM = (("plan", "text"), ("score", "number"), ("vip", "boolean"), ("renewal", "date"))
CAMPAIGNS = 10
LISTS = 3
NOW = datetime.now(UTC).replace(microsecond=0)


def h(salt: int, *terms: str) -> str:
    """A deterministic pseudo-random number 0..99 from integer SQL terms."""
    primes = (7919 + salt * 104723, 104729 + salt * 7927)
    mix = " + ".join(f"{t} * {m}" for t, m in zip(terms, primes, strict=False))
    return f"((({mix} + {salt}) % 1000003) % 100)"


# --- Data ------------------------------------------------------------------------------


def _series(pg: bool, n: int, name: str) -> str:
    if pg:
        return f"generate_series(1::bigint, {n}) AS {name}({name})"
    return f"(WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < {n}) SELECT v AS {name} FROM s)"


def _ago(pg: bool, minutes_sql: str) -> str:
    if pg:
        return f"(TIMESTAMPTZ '{NOW.isoformat()}' - ({minutes_sql}) * INTERVAL '1 minute')"
    base = NOW.strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"(strftime('%Y-%m-%d %H:%M:%S', '{base}', '-' || ({minutes_sql}) || ' minutes') "
        "|| '.000000')"
    )


def load(engine, pg: bool, contacts: int) -> dict[str, float]:
    """Fill a fresh migrated database; returns timings."""
    timings = {}
    started = time.perf_counter()
    g = "g"
    plan = f"CASE {h(1, g)} % 4 WHEN 0 THEN 'free' WHEN 1 THEN 'basic' WHEN 2 THEN 'pro' ELSE 'enterprise' END"
    renewal_day = f"{h(3, g)} * 4"
    if pg:
        custom = (
            f"jsonb_build_object('plan', {plan}, 'score', {h(2, g)}, 'vip', {h(4, g)} < 10, "
            f"'renewal', to_char(DATE '2026-01-01' + ({renewal_day})::int, 'YYYY-MM-DD'))"
        )
    else:
        custom = (
            f"json_object('plan', {plan}, 'score', {h(2, g)}, "
            f"'vip', json(CASE WHEN {h(4, g)} < 10 THEN 'true' ELSE 'false' END), "
            f"'renewal', date('2026-01-01', '+' || ({renewal_day}) || ' days'))"
        )
    created = _ago(pg, f"({g} * 7919) % 1051200")
    countries = "CASE {} % 5 WHEN 0 THEN 'FR' WHEN 1 THEN 'US' WHEN 2 THEN 'DE' WHEN 3 THEN 'GB' ELSE 'ES' END"
    with Session(engine) as session, session.begin():
        session.add(Workspace(id=1, slug="bench", name="Bench"))
        session.flush()
        for key, type_ in CUSTOM:
            session.add(CustomField(workspace_id=1, key=key, label=key.title(), type=type_))
        for c in range(1, CAMPAIGNS + 1):
            session.add(Campaign(id=c, workspace_id=1, name=f"Campaign {c}", status="sent"))
        for li in range(1, LISTS + 1):
            session.add(ContactList(id=li, workspace_id=1, name=f"List {li}"))
    with engine.begin() as conn:
        if pg:  # a bulk load of generated rows: skip the per-row foreign-key triggers
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(
            text(
                "INSERT INTO contact (id, workspace_id, email, first_name, last_name, company, city, "
                "country, phone, custom_fields, status, source, created_at, updated_at) "
                f"SELECT {g}, 1, 'c' || {g} || '@example.' || CASE WHEN {g} % 3 = 0 THEN 'org' ELSE 'com' END, "
                f"'First' || ({g} % 997), 'Last' || ({g} % 991), 'Company ' || ({g} % 503), "
                f"'City ' || {h(5, g)} % 50, {countries.format(h(6, g))}, '', {custom}, "
                f"CASE WHEN {h(7, g)} < 5 THEN 'unsubscribed' ELSE 'subscribed' END, 'import', "
                f"{created}, {created} FROM {_series(pg, contacts, g)}"
            )
        )
        timings["contacts_s"] = time.perf_counter() - started

        started = time.perf_counter()
        for li in range(1, LISTS + 1):
            conn.execute(
                text(
                    "INSERT INTO list_membership (list_id, contact_id) "
                    f"SELECT {li}, {g} FROM {_series(pg, contacts, g)} WHERE {h(10 + li, g)} < {10 + 10 * li}"
                )
            )
        timings["lists_s"] = time.perf_counter() - started

        # Events: load without the secondary indexes, build them afterwards (much faster).
        started = time.perf_counter()
        for index in Event.__table__.indexes:
            conn.execute(text(f"DROP INDEX {index.name}"))
        if pg:
            conn.execute(text("ALTER TABLE event DROP CONSTRAINT uq_event_dedupe_key"))
        sent = f"{h(20, 'g', 'c')} < 40"
        delivered = f"{sent} AND {h(21, 'g', 'c')} < 97"
        opened = f"{delivered} AND {h(22, 'g', 'c')} < 35"
        stages = [
            ("sent", sent, "0"),
            ("delivered", delivered, "1"),
            ("bounce", f"{sent} AND {h(21, 'g', 'c')} >= 98", "2"),
            ("open", opened, f"60 + {h(23, 'g', 'c')} * 20"),
            ("click", f"{opened} AND {h(24, 'g', 'c')} < 30", f"65 + {h(23, 'g', 'c')} * 20"),
            (
                "unsubscribe",
                f"{opened} AND {h(25, 'g', 'c')} < 3",
                f"70 + {h(23, 'g', 'c')} * 20",
            ),
        ]
        pairs = f"{_series(pg, contacts, 'g')} CROSS JOIN {_series(pg, CAMPAIGNS, 'c')}"
        for type_, condition, offset in stages:
            # Campaign c went out (c * 9 - 5) days ago; its events follow within two days.
            minutes = f"(c * 9 - 5) * 1440 - ({offset})"
            conn.execute(
                text(
                    "INSERT INTO event (workspace_id, campaign_id, contact_id, type, occurred_at, "
                    "source, dedupe_key, created_at) "
                    f"SELECT 1, c, g, '{type_}', {_ago(pg, minutes)}, 'ses', "
                    f"'{type_}:' || g || ':' || c, {_ago(pg, minutes)} FROM {pairs} WHERE {condition}"
                )
            )
        timings["events_load_s"] = time.perf_counter() - started
        started = time.perf_counter()
        if pg:
            conn.execute(
                text("ALTER TABLE event ADD CONSTRAINT uq_event_dedupe_key UNIQUE (dedupe_key)")
            )
        for index in Event.__table__.indexes:
            index.create(conn)
        timings["events_index_s"] = time.perf_counter() - started
    started = time.perf_counter()
    if pg:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    timings["analyze_s"] = time.perf_counter() - started
    return timings


# --- The rule trees and their hand-written SQL --------------------------------------------

DAY = 86400


def trees(pg: bool) -> list[tuple[str, dict, str]]:
    """(name, rule tree, hand-written WHERE over contact c) — 6 conditions, 2 of activity."""

    def ts(days: int) -> str:
        value = NOW - timedelta(days=days)
        return f"TIMESTAMPTZ '{value.isoformat()}'" if pg else f"'{value:%Y-%m-%d %H:%M:%S.%f}'"

    def midnight(day: str) -> str:
        return f"TIMESTAMPTZ '{day} 00:00:00+00:00'" if pg else f"'{day} 00:00:00.000000'"

    def cf(key: str, kind: str = "text") -> str:
        if pg:
            return f"(c.custom_fields->>'{key}')" + ("::numeric" if kind == "number" else "")
        return f"json_extract(c.custom_fields, '$.{key}')"

    def ev(types: str, extra: str = "") -> str:
        return f"EXISTS (SELECT 1 FROM event e WHERE e.contact_id = c.id AND e.type = '{types}'{extra})"

    vip = f"({cf('vip')} = 'true')" if pg else "json_type(c.custom_fields, '$.vip') = 'true'"
    return [
        (
            "all_6",
            {
                "match": "all",
                "rules": [
                    {"field": "country", "op": "eq", "value": "FR"},
                    {"field": "custom_fields.score", "op": "gte", "value": 40},
                    {"activity": "opened", "within_days": 30},
                    {"activity": "clicked", "campaign_id": 3},
                    {"field": "created_at", "op": "within_last_days", "value": 365},
                    {"list": 1},
                ],
            },
            f"lower(c.country) = 'fr' AND {cf('score', 'number')} >= 40 "
            f"AND {ev('open', f' AND e.occurred_at >= {ts(30)}')} "
            f"AND {ev('click', ' AND e.campaign_id = 3')} "
            f"AND c.created_at >= {ts(365)} "
            "AND EXISTS (SELECT 1 FROM list_membership m WHERE m.contact_id = c.id AND m.list_id = 1)",
        ),
        (
            "any_6",
            {
                "match": "any",
                "rules": [
                    {"field": "custom_fields.plan", "op": "eq", "value": "pro"},
                    {"field": "custom_fields.vip", "op": "is_true"},
                    {"activity": "opened", "campaign_id": 1},
                    {"activity": "clicked", "within_days": 14},
                    {"field": "city", "op": "starts_with", "value": "City 1"},
                    {"field": "custom_fields.renewal", "op": "before", "value": "2026-03-01"},
                ],
            },
            f"lower({cf('plan')}) = 'pro' OR {vip} "
            f"OR {ev('open', ' AND e.campaign_id = 1')} "
            f"OR {ev('click', f' AND e.occurred_at >= {ts(14)}')} "
            f"OR lower(c.city) LIKE 'city 1%' OR {cf('renewal')} < '2026-03-01'",
        ),
        (
            "nested_6",
            {
                "match": "all",
                "rules": [
                    {"field": "status", "op": "eq", "value": "subscribed"},
                    {
                        "match": "any",
                        "rules": [
                            {"activity": "opened", "within_days": 7},
                            {"activity": "clicked", "campaign_id": 2},
                        ],
                    },
                    {"list": 2, "negate": True},
                    {
                        "match": "any",
                        "rules": [
                            {
                                "field": "custom_fields.plan",
                                "op": "in",
                                "value": ["pro", "enterprise"],
                            },
                            {"field": "custom_fields.score", "op": "between", "value": [10, 30]},
                        ],
                    },
                    {"field": "email", "op": "ends_with", "value": ".com"},
                ],
            },
            f"c.status = 'subscribed' "
            f"AND ({ev('open', f' AND e.occurred_at >= {ts(7)}')} OR {ev('click', ' AND e.campaign_id = 2')}) "
            "AND NOT EXISTS (SELECT 1 FROM list_membership m WHERE m.contact_id = c.id AND m.list_id = 2) "
            f"AND (lower({cf('plan')}) IN ('pro', 'enterprise') OR {cf('score', 'number')} BETWEEN 10 AND 30) "
            "AND c.email LIKE '%.com'",
        ),
        (
            "negated_6",
            {
                "match": "all",
                "rules": [
                    {"activity": "opened", "negate": True},
                    {"activity": "bounced", "negate": True},
                    {"field": "company", "op": "contains", "value": "7"},
                    {"field": "country", "op": "neq", "value": "US"},
                    {"field": "custom_fields.plan", "op": "neq", "value": "free"},
                    {"field": "created_at", "op": "before", "value": "2026-09-01"},
                ],
            },
            f"NOT {ev('open')} AND NOT {ev('bounce')} AND lower(c.company) LIKE '%7%' "
            f"AND lower(c.country) <> 'us' AND ({cf('plan')} IS NULL OR lower({cf('plan')}) <> 'free') "
            f"AND c.created_at < {midnight('2026-09-01')}",
        ),
    ]


def _best_pair(first, second, repeats: int) -> tuple[float, int, float, int]:
    """Best-of-N wall time of two callables, run alternately so both see the same load."""
    times: tuple[list[float], list[float]] = ([], [])
    results = [0, 0]
    for _ in range(repeats):
        for i, fn in enumerate((first, second)):
            started = time.perf_counter()
            results[i] = fn()
            times[i].append(time.perf_counter() - started)
    return min(times[0]), results[0], min(times[1]), results[1]


def run_backend(url: str, pg: bool, contacts: int, repeats: int, reuse: bool = False) -> dict:
    engine = create_db_engine(url)
    timings = {}
    if not reuse:
        migrate(url)
        timings = load(engine, pg, contacts)
    with engine.connect() as conn:
        events = conn.execute(text("SELECT count(*) FROM event")).scalar_one()
    actor = Actor.system(1)

    results = {}
    for name, rules, hand in trees(pg):
        hand_sql = text(f"SELECT count(*) FROM contact c WHERE c.workspace_id = 1 AND ({hand})")
        with Session(engine) as session:
            if pg:  # count_matching's settings; the hand-written query runs the same way
                session.execute(text("SET jit = off"))
                session.execute(text("SET work_mem = '64MB'"))
            compiled_s, compiled_n, hand_s, hand_n = _best_pair(
                lambda rules=rules, session=session: (
                    count_matching(session, actor, rules, at=NOW).count
                ),
                lambda session=session, hand_sql=hand_sql: session.execute(hand_sql).scalar_one(),
                repeats,
            )
            if os.environ.get("BENCH_EXPLAIN"):
                query = matching_query(session, 1, rules, at=NOW)
                sql = str(
                    query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
                )
                prefix = "EXPLAIN ANALYZE " if pg else "EXPLAIN QUERY PLAN "
                plan = session.execute(text(prefix + sql)).all()
                print("\n".join(str(r[-1]) for r in plan), file=sys.stderr)
        results[name] = {
            "count": compiled_n,
            "hand_count": hand_n,
            "same": compiled_n == hand_n,
            "compiled_s": round(compiled_s, 4),
            "hand_s": round(hand_s, 4),
            "ratio": round(compiled_s / hand_s, 2) if hand_s else None,
        }
        print(
            f"{'pg' if pg else 'sqlite'} {name:10s} count={compiled_n:>8} hand={hand_n:>8} "
            f"compiled={compiled_s:.3f}s hand={hand_s:.3f}s ratio={results[name]['ratio']}",
            flush=True,
        )
    engine.dispose()
    worst = max(r["compiled_s"] for r in results.values())
    return {
        "contacts": contacts,
        "events": events,
        "load": {k: round(v, 1) for k, v in timings.items()},
        "trees": results,
        "worst_s": worst,
        "worst_ratio": max(r["ratio"] for r in results.values()),
        "all_same": all(r["same"] for r in results.values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=0.05, help="1 = the issue's sizes")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
        help="a PostgreSQL server URL with rights to create a database",
    )
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--repeats", type=int, default=5, help="best of N")
    parser.add_argument("--keep", action="store_true", help="keep the bench databases")
    parser.add_argument("--reuse-pg", default="", help="a kept PostgreSQL bench database to reuse")
    args = parser.parse_args()

    summary: dict = {"scale": args.scale, "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    if not args.skip_sqlite:
        folder = Path(tempfile.mkdtemp(prefix="mw-bench-seg-"))
        url = f"sqlite:///{folder / 'bench.db'}"
        summary["sqlite"] = run_backend(url, False, int(100_000 * args.scale), args.repeats)
        if not args.keep:
            for file in folder.iterdir():
                file.unlink()
            folder.rmdir()
    if not args.skip_pg:
        name = args.reuse_pg or f"mw_bench_seg_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
        if not args.reuse_pg:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(args.pg_url).set(database=name).render_as_string(hide_password=False)
        try:
            summary["postgresql"] = run_backend(
                url, True, int(1_000_000 * args.scale), args.repeats, bool(args.reuse_pg)
            )
        finally:
            from core.infra.db import dispose_all

            dispose_all()
            if not args.keep and not args.reuse_pg:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    summary["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    headline = {
        "scale": args.scale,
        "loadavg": summary["loadavg_after"],
    }
    for backend in ("sqlite", "postgresql"):
        if backend in summary:
            part = summary[backend]
            headline[f"{backend}_contacts"] = part["contacts"]
            headline[f"{backend}_events"] = part["events"]
            headline[f"{backend}_worst_s"] = part["worst_s"]
            headline[f"{backend}_worst_ratio_to_hand_sql"] = part["worst_ratio"]
            headline[f"{backend}_counts_equal_hand_sql"] = part["all_same"]
    print(json.dumps(summary), file=sys.stderr)
    print(json.dumps(headline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
