"""Import speed: a generated CSV (email, 5 standard fields, 3 custom fields, 1% bad rows,
1% duplicates) imported end to end into SQLite and PostgreSQL, against the floor measured in
the same run: a bare COPY of the same file into an unindexed PostgreSQL table plus one
email-validator call per row.

    python bench/import.py [--scale 0.2] [--pg-url postgresql+psycopg://postgres@127.0.0.1/postgres]

--scale 1 is the issue's million rows. Each import runs in its own process so its peak
memory (RSS) is its own. The last line is one JSON object of headline figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIRST = ["Anna", "Bob", "Chloé", "Dmitri", "Eve", "Farid", "Grace", "Hugo", "Ines", "Jun"]
LAST = ["Smith", "Müller", "García", "Kowalski", "Nguyen", "Rossi", "Dubois", "Sato"]
CITY = ["Berlin", "Paris", "Lyon", "Madrid", "Köln", "Oslo", "Austin", "Osaka"]
PLANS = ["free", "pro", "team", "enterprise"]


def generate(path: Path, rows: int, seed: int = 1) -> None:
    """`rows` data rows: 1% invalid addresses, 1% repeats of earlier ones (other case)."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("Email,First Name,Last Name,Company,City,Country,Plan,Score,Signup Date\n")
        for i in range(rows):
            roll = rng.random()
            if roll < 0.01:
                email = f"broken{i}@@example..com"
            elif roll < 0.02 and i > 100:
                email = f"User{rng.randrange(i // 2)}.x@Example.COM"
            else:
                email = f"user{i}.x@example.com"
            company = f'"Company {i % 997}, Ltd"' if i % 5 == 0 else f"Company {i % 997}"
            fh.write(
                f"{email},{FIRST[i % 10]},{LAST[i % 8]},{company},{CITY[i % 8]},DE,"
                f"{PLANS[i % 4]},{i % 1000},2024-{1 + i % 12:02d}-{1 + i % 28:02d}\n"
            )


def child(backend: str, url: str, csv_path: str) -> None:
    """Run one import in this process and print its figures as JSON."""
    from core.contacts.importing import import_contacts
    from core.infra.db import get_sessionmaker, session_scope
    from core.infra.migrate import migrate
    from core.infra.permissions import Actor
    from core.models import Workspace

    migrate(url)
    with session_scope(url) as session:
        workspace = Workspace(slug="bench", name="Bench")
        session.add(workspace)
        session.flush()
        ws_id = workspace.id
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    result = import_contacts(get_sessionmaker(url), Actor.system(ws_id), csv_path)
    seconds = time.perf_counter() - start
    # The contacts page's first render on what was just imported: one page and the total.
    from core.contacts.service import ContactFilter, page_contacts

    timings = {}
    for name, flt, sort in [
        ("first_page", ContactFilter(), "created_at"),
        ("search", ContactFilter(search="user4242"), "created_at"),
        ("status_sorted_by_email", ContactFilter(statuses=("subscribed",)), "email"),
    ]:
        with session_scope(url) as session:
            t0 = time.perf_counter()
            page_contacts(session, Actor.system(ws_id), flt, sort=sort)
            timings[name] = round(time.perf_counter() - t0, 3)
    print(
        json.dumps(
            {
                "backend": backend,
                "seconds": seconds,
                "rows": result.rows,
                "created": result.created,
                "invalid": result.invalid,
                "duplicates": result.duplicates,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "rss_before_mb": rss_before / 1024,
                # The worker processes that checked the rows: the largest one, and how many.
                "workers": result.workers,
                "worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                "page_query_s": timings,
            }
        )
    )


def run_child(backend: str, url: str, csv_path: Path, data_dir: Path) -> dict:
    env = dict(os.environ, DATA_DIR=str(data_dir), DATABASE_URL=url, ENVIRONMENT="development")
    done = subprocess.run(
        [sys.executable, __file__, "--child", backend, "--url", url, "--file", str(csv_path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{backend} import failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def total_rss(figures: dict) -> int:
    """An upper bound of the import's memory: its own peak plus each worker's at the largest."""
    return round(figures["peak_rss_mb"] + figures["workers"] * figures["worker_peak_rss_mb"])


def pg_floor(admin_url: str, csv_path: Path, rows: int) -> dict:
    """COPY of the file into an unindexed table, and email-validator over every address."""
    import psycopg
    from email_validator import EmailNotValidError, validate_email
    from sqlalchemy.engine import make_url

    parsed = make_url(admin_url)
    conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_floor")
        conn.execute(
            "CREATE UNLOGGED TABLE bench_floor (email text, first_name text, last_name text, "
            "company text, city text, country text, plan text, score text, signup text)"
        )
        start = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy("COPY bench_floor FROM STDIN (FORMAT csv, HEADER)") as cp,
            open(csv_path, "rb") as fh,
        ):
            while block := fh.read(1 << 20):
                cp.write(block)
        copy_s = time.perf_counter() - start
        conn.execute("DROP TABLE bench_floor")
    emails = []
    with open(csv_path, encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            emails.append(line.split(",", 1)[0])
    start = time.perf_counter()
    for email in emails:
        with contextlib.suppress(EmailNotValidError):
            validate_email(email, check_deliverability=False)
    validate_s = time.perf_counter() - start
    cores = os.cpu_count() or 1
    return {
        "copy_s": copy_s,
        "validate_s": validate_s,
        "floor_s": copy_s + validate_s,
        "floor_parallel_s": max(copy_s, validate_s / cores),
        "cores": cores,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=0.2, help="1.0 = 1,000,000 rows")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL", ""),
        help="admin URL of a PostgreSQL server (a scratch database is created and dropped)",
    )
    parser.add_argument("--child")
    parser.add_argument("--url")
    parser.add_argument("--file")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url, args.file)
        return

    rows = int(1_000_000 * args.scale)
    tmp = Path(tempfile.mkdtemp(prefix="mw-bench-import-"))
    csv_path = tmp / "contacts.csv"
    start = time.perf_counter()
    generate(csv_path, rows)
    print(
        f"generated {rows:,} rows ({csv_path.stat().st_size / 1e6:.0f} MB) in "
        f"{time.perf_counter() - start:.1f}s; load {os.getloadavg()}"
    )
    figures: dict = {"rows": rows, "loadavg_start": [round(x, 2) for x in os.getloadavg()]}

    sqlite = run_child("sqlite", f"sqlite:///{tmp / 'bench.db'}", csv_path, tmp)
    print(f"sqlite: {sqlite}")
    figures["sqlite_rows_per_s"] = round(rows / sqlite["seconds"])
    figures["sqlite_seconds"] = round(sqlite["seconds"], 2)
    figures["sqlite_peak_rss_mb"] = round(sqlite["peak_rss_mb"])
    figures["sqlite_peak_rss_total_mb"] = total_rss(sqlite)
    figures["sqlite_first_page_s"] = sqlite["page_query_s"]["first_page"]
    figures["created"] = sqlite["created"]
    figures["invalid"] = sqlite["invalid"]
    figures["duplicates"] = sqlite["duplicates"]

    if args.pg_url:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        name = f"mw_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(args.pg_url).set(database=name).render_as_string(hide_password=False)
        try:
            pg = run_child("postgresql", url, csv_path, tmp)
            print(f"postgresql: {pg}")
            floor = pg_floor(url, csv_path, rows)
            print(f"floor: {floor}")
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        figures["pg_rows_per_s"] = round(rows / pg["seconds"])
        figures["pg_seconds"] = round(pg["seconds"], 2)
        figures["pg_peak_rss_mb"] = round(pg["peak_rss_mb"])
        figures["pg_peak_rss_total_mb"] = total_rss(pg)
        figures["pg_first_page_s"] = pg["page_query_s"]["first_page"]
        figures["floor_copy_s"] = round(floor["copy_s"], 2)
        figures["floor_validate_s"] = round(floor["validate_s"], 2)
        figures["floor_s"] = round(floor["floor_s"], 2)
        figures["pg_to_floor"] = round(pg["seconds"] / floor["floor_s"], 2)
        figures["sqlite_to_floor"] = round(sqlite["seconds"] / floor["floor_s"], 2)
        figures["pg_to_parallel_floor"] = round(pg["seconds"] / floor["floor_parallel_s"], 2)
        figures["goal_pg_50k"] = figures["pg_rows_per_s"] >= 50_000
    figures["goal_sqlite_30k"] = figures["sqlite_rows_per_s"] >= 30_000
    figures["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
