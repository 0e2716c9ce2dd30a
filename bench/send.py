"""Sending speed: a campaign to the outbox through real Celery workers, the audience
snapshot, and the rate limit held by several workers.

    .venv/bin/python bench/send.py                  # 100,000 recipients, SQLite, 2 workers
    .venv/bin/python bench/send.py --scale 0.1      # 10,000
    .venv/bin/python bench/send.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres \
        --snapshot-rows 1000000                     # also the 1M snapshot on PostgreSQL

Prints its figures, and as its last line one JSON object of headline figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path(tempfile.mkdtemp(prefix="mailwright-bench-send-"))
os.environ.update(
    {
        "ENVIRONMENT": "test",
        "DATA_DIR": str(DATA),
        "DATABASE_URL": f"sqlite:///{DATA / 'bench.db'}",
        "BROKER_URL": f"sqla+sqlite:///{DATA / 'broker.db'}",
        "RESULT_BACKEND": f"db+sqlite:///{DATA / 'results.db'}",
        "OUTBOX_DIR": str(DATA / "outbox"),
        "SECRET_KEY": "bench-secret-key-with-enough-length-0123456789",
        "EMAIL_TRANSPORT": "outbox",
        "PUBLIC_BASE_URL": "https://track.example.com",
    }
)

from sqlalchemy import create_engine, func, select, text  # noqa: E402

from core.campaigns import audience  # noqa: E402
from core.campaigns import service as campaigns  # noqa: E402
from core.infra.config import settings  # noqa: E402
from core.infra.db import get_sessionmaker, session_scope  # noqa: E402
from core.infra.migrate import migrate  # noqa: E402
from core.infra.permissions import Actor  # noqa: E402
from core.models import Campaign, ContactList, Message, Template  # noqa: E402
from core.sending import pipeline as sending  # noqa: E402
from tests.processes import process_env, start_worker, wait_until  # noqa: E402

# About 2 KB of personalised HTML with a few links.
HTML = (
    "<html><head><style>p{color:#333}</style></head><body>"
    "<h1>Hello {{ first_name | default('there') }}!</h1>"
    + "".join(
        f"<p>Paragraph {i}: news for {{{{ company }}}} in {{{{ city }}}} — "
        f'<a href="https://example.org/article/{i}?utm=mail">read more</a>. '
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.</p>"
        for i in range(8)
    )
    + "</body></html>"
)


def seed(url: str, contacts: int) -> tuple[Actor, int]:
    """A workspace, a template, a list holding `contacts` contacts (generated in SQL)."""
    from tests.helpers import actor_of, make_user, make_workspace

    with session_scope(url) as s:
        ws = make_workspace(
            s, f"bench-{uuid.uuid4().hex[:6]}", from_email="news@acme.io", max_send_rate=1e5
        )
        actor = actor_of(make_user(s, ws))
        tpl = Template(workspace_id=ws.id, name="Bench", subject="News for {{ first_name }}")
        tpl.html = HTML
        lst = ContactList(workspace_id=ws.id, name="Everyone")
        s.add_all([tpl, lst])
        s.flush()
        pg = s.get_bind().dialect.name == "postgresql"
        series = (
            "SELECT g AS x FROM generate_series(1, :n) g"
            if pg
            else "WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq WHERE x < :n) "
            "SELECT x FROM seq"
        )
        s.execute(
            text(
                "INSERT INTO contact (workspace_id, email, first_name, last_name, company, city,"
                " country, phone, custom_fields, status, source, created_at, updated_at) "
                f"SELECT :ws, 'c' || x || '@example.com', 'First' || x, 'Last', 'Company ' || (x % 97),"
                " 'City', 'DE', '', '{}', "
                " CASE WHEN x % 50 = 0 THEN 'unsubscribed' ELSE 'subscribed' END, 'bench',"
                f" CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM ({series}) AS seq_rows"
            ),
            {"ws": ws.id, "n": contacts},
        )
        s.execute(
            text(
                "INSERT INTO list_membership (list_id, contact_id, created_at) "
                "SELECT :l, id, CURRENT_TIMESTAMP FROM contact WHERE workspace_id = :ws"
            ),
            {"l": lst.id, "ws": ws.id},
        )
        c = campaigns.create_campaign(s, actor, "Bench")
        campaigns.update_setup(
            s, actor, c.id, name="Bench", subject="", from_name="Acme", from_email="news@acme.io"
        )
        campaigns.update_audience(s, actor, c.id, {"list_ids": [lst.id]})
        campaigns.update_template(s, actor, c.id, tpl.id)
        # Far in the future, so no worker's tick starts it; the bench starts it, timed.
        campaigns.schedule(s, actor, c.id, campaigns.clock.now() + timedelta(days=1))
        return actor, c.id


def _seed_quietly(url: str, contacts: int) -> tuple[Actor, int]:
    """Seed a scheduled campaign; the bench makes it due and starts it itself, timed."""
    return seed(url, contacts)


def _start(url: str, cid: int) -> None:
    """Make the campaign due and run the start task's work here (snapshot + fan-out)."""
    with get_sessionmaker(url).begin() as s:
        s.get(Campaign, cid).scheduled_at = campaigns.clock.now()
    sending.start_campaign(get_sessionmaker(url), cid)


def compose_rate(campaign_id: int, url: str, n: int = 3000) -> float:
    """One core rendering and building messages (no database, no files): the ceiling."""
    with get_sessionmaker(url)() as s:
        campaign = s.get(Campaign, campaign_id)
        sending._snapshot_content(s, campaign)
        from core.models import Workspace

        composer = sending.Composer(campaign, s.get(Workspace, campaign.workspace_id))
        composer.compile_variants(s, campaign.variants)
        s.rollback()
    row = {
        "message_id": 1,
        "contact_id": 1,
        "variant_id": None,
        "email": "c1@example.com",
        "first_name": "Ann",
        "company": "Initech",
        "city": "Berlin",
        "custom_fields": {},
    }
    started = time.perf_counter()
    for i in range(n):
        row["message_id"] = i
        unsub = sending.tracking.unsubscribe_url(1, 1, i)
        composer.build(
            message_id=i, to=row["email"], rendered=composer.render(row, unsub), unsubscribe=unsub
        )
    return n / (time.perf_counter() - started)


def end_to_end(
    recipients: int, workers: int, url: str = "", env_extra: dict[str, str] | None = None
) -> dict:
    """The campaign through `workers` real workers (bench/automations.py runs it too, on its
    own database and broker: `url`, `env_extra`)."""
    url = url or settings.database_url
    migrate(url)
    actor, cid = _seed_quietly(url, recipients)
    per_core = compose_rate(cid, url)
    env = process_env(
        DATA, url, SEND_TICK_SECONDS="3600", SEND_BATCH_SIZE="500", **(env_extra or {})
    )
    procs = [
        start_worker(env, DATA / f"worker{i}.log", concurrency=1, name=f"b{i}")
        for i in range(workers)
    ]
    try:
        started = time.perf_counter()
        _start(url, cid)
        snapshot_s = time.perf_counter() - started

        def done() -> bool:
            with session_scope(url) as s:
                return s.scalar(select(Campaign.status).where(Campaign.id == cid)) == "sent"

        wait_until(done, 1800, "campaign sent")
        elapsed = time.perf_counter() - started
    finally:
        for p in procs:
            p.stop()
    files = len(os.listdir(DATA / "outbox" / "new"))
    with session_scope(url) as s:
        sent = s.scalar(
            select(func.count()).where(Message.campaign_id == cid, Message.status == "sent")
        )
    return {
        "recipients": sent,
        "files": files,
        "start_s_snapshot_and_publish": round(snapshot_s, 2),
        "seconds": round(elapsed, 2),
        "msgs_per_s": round(sent / elapsed, 1),
        "compose_per_core_per_s": round(per_core, 1),
    }


def rate_limit(rate: float, workers: int, messages: int) -> dict:
    url = f"sqlite:///{DATA / 'rate.db'}"
    migrate(url)
    with session_scope(url) as s:
        from core.models import Workspace

        actor, cid = _seed_quietly(url, messages)
        s.get(Workspace, actor.workspace_id).max_send_rate = rate
    env = process_env(
        DATA,
        url,
        SEND_TICK_SECONDS="3600",
        SEND_BATCH_SIZE="20",
        OUTBOX_DIR=str(DATA / "outbox-rate"),
    )
    procs = [
        start_worker(env, DATA / f"rate{i}.log", concurrency=1, name=f"r{i}")
        for i in range(workers)
    ]
    try:
        _start(url, cid)

        def done() -> bool:
            with session_scope(url) as s:
                return s.scalar(select(Campaign.status).where(Campaign.id == cid)) == "sent"

        wait_until(done, 600, "rate campaign sent")
    finally:
        for p in procs:
            p.stop()
    with session_scope(url) as s:
        stamps = sorted(
            t.timestamp()
            for t in s.scalars(select(Message.sent_at).where(Message.campaign_id == cid))
        )
    # sent_at is taken per chunk after the sends; the file times are per message.
    files = sorted(p.stat().st_mtime for p in (DATA / "outbox-rate" / "new").iterdir())
    worst, j = 0, 0
    for i, start in enumerate(files):
        while j < len(files) and files[j] < start + 1.0:
            j += 1
        worst = max(worst, j - i)
    span = files[-1] - files[0]
    return {
        "rate": rate,
        "workers": workers,
        "messages": len(files),
        "max_in_any_1s_window": worst,
        "average_per_s": round((len(files) - 1) / span, 1) if span else 0,
        "ledger_rows": len(stamps),
    }


def pg_snapshot(pg_admin: str, rows: int) -> dict:
    from sqlalchemy.engine import make_url

    name = f"mw_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_admin, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_admin).set(database=name).render_as_string(hide_password=False)
    try:
        migrate(url)
        _, cid = _seed_quietly(url, rows)
        # The contacts were loaded long before a campaign goes out: autovacuum has visited
        # them (visibility map set, statistics fresh), as it does minutes after a bulk load.
        vacuum = create_engine(url, isolation_level="AUTOCOMMIT")
        with vacuum.connect() as c:
            c.execute(text("VACUUM ANALYZE"))
        vacuum.dispose()
        with get_sessionmaker(url)() as s:
            campaign = s.get(Campaign, cid)
            sending._snapshot_content(s, campaign)
            s.commit()
            started = time.perf_counter()
            audience.snapshot(s, campaign)  # the one INSERT … SELECT the start task runs
            s.commit()
            seconds = time.perf_counter() - started
            count = s.scalar(select(func.count()).where(Message.campaign_id == cid))
        return {"rows": count, "seconds": round(seconds, 2)}
    finally:
        from core.infra.db import dispose_all

        dispose_all()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 100,000 recipients")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pg", default="", help="PostgreSQL admin URL for the snapshot bench")
    parser.add_argument("--snapshot-rows", type=int, default=1_000_000)
    parser.add_argument("--skip-rate", action="store_true")
    args = parser.parse_args()
    from core.infra import jobs

    jobs.set_dispatcher(None)
    figures: dict = {"load_before": [round(x, 2) for x in os.getloadavg()]}
    try:
        e2e = end_to_end(int(100_000 * args.scale), args.workers)
        print("end to end:", e2e)
        figures["end_to_end"] = e2e
        if not args.skip_rate:
            rl = rate_limit(50.0, 4, 500)
            print("rate limit:", rl)
            figures["rate_limit"] = rl
        if args.pg:
            snap = pg_snapshot(args.pg, args.snapshot_rows)
            print("postgres snapshot:", snap)
            figures["pg_snapshot"] = snap
    finally:
        shutil.rmtree(DATA, ignore_errors=True)
    figures["load_after"] = [round(x, 2) for x in os.getloadavg()]
    figures["msgs_per_s"] = e2e["msgs_per_s"]
    figures["target_ratio"] = round(e2e["msgs_per_s"] / 2000, 2)
    figures["e2e_vs_one_core_compose"] = round(e2e["msgs_per_s"] / e2e["compose_per_core_per_s"], 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
