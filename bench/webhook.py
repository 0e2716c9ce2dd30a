"""Webhook throughput: signed SES notifications posted to a real uvicorn (two workers).

    python bench/webhook.py [--scale 1.0] [--database-url postgresql+psycopg://...]

A load generator in another process keeps `--concurrency` keep-alive connections busy on
loopback. The same load first goes to a bare FastAPI endpoint that only returns 200
(same uvicorn flags), then to `POST /sns/ses`; every notification is a distinct SES
event, verified and stored. Prints the figures and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOPIC = "arn:aws:sns:us-east-1:123456789012:mailwright-bench"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-bench.pem"
BARE_APP = """
from fastapi import FastAPI
from fastapi.responses import Response

app = FastAPI()


@app.post("/sns/ses")
async def bare() -> Response:
    return Response(status_code=200)


@app.get("/healthz")
async def healthz() -> Response:
    return Response(status_code=200)
"""
# Each bare phase sends a round's requests this many times (it is about 4x as fast).
BARE_REPEAT = 4
# What the bench sends: (SES event, share of requests).
MIX = [
    ("Delivery", 0.50),
    ("Open", 0.25),
    ("Click", 0.13),
    ("Send", 0.05),
    ("Bounce", 0.05),
    ("Complaint", 0.02),
]


# ---------------------------------------------------------------- load generator (child)


async def _load(port: int, requests: list[bytes], concurrency: int) -> dict:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    bodies: dict[str, int] = {}
    index = 0

    async def connection() -> None:
        nonlocal index
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while index < len(requests):
            request = requests[index]
            index += 1
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length) if length else b""
            latencies.append(time.perf_counter() - started)
            status = head[9:12].decode()
            statuses[status] = statuses.get(status, 0) + 1
            if b'"status"' in body:
                key = json.loads(body)["status"]
                bodies[key] = bodies.get(key, 0) + 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    n = len(latencies)
    return {
        "requests": n,
        "seconds": elapsed,
        "per_second": n / elapsed,
        "p50_ms": latencies[n // 2] * 1000,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000,
        "statuses": statuses,
        "outcomes": bodies,
        "latencies": latencies,
    }


def load_child(path: str, port: int, concurrency: int) -> None:
    with open(path, "rb") as fh:
        requests = pickle.load(fh)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(_load(port, requests, concurrency))
    # Into a file beside the requests: a line of every latency came back cut through a pipe.
    Path(path).with_suffix(".result.json").write_text(json.dumps(result))


def run_load(path: Path, port: int, concurrency: int) -> dict:
    """The load, from another process, against 127.0.0.1:port."""
    subprocess.run(
        [sys.executable, __file__, "--load-child", str(path), str(port), str(concurrency)],
        check=True,
        timeout=600,
    )
    return json.loads(path.with_suffix(".result.json").read_text())


# ---------------------------------------------------------------- signing (pool)


def _sign_chunk(args: tuple[bytes, list[dict]]) -> list[bytes]:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    from core.ingest.sns import string_to_sign

    key_pem, messages = args
    key = serialization.load_pem_private_key(key_pem, password=None)
    out = []
    for message in messages:
        algorithm = hashes.SHA1() if message["SignatureVersion"] == "1" else hashes.SHA256()
        signature = key.sign(string_to_sign(message), padding.PKCS1v15(), algorithm)
        message["Signature"] = base64.b64encode(signature).decode()
        body = json.dumps(message).encode()
        out.append(
            b"POST /sns/ses HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: text/plain; charset=UTF-8\r\n"
            b"x-amz-sns-message-type: Notification\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
    return out


def ses_body(kind: str, provider_id: str, email: str, at: str) -> dict:
    body: dict = {
        "eventType": kind,
        "mail": {
            "timestamp": at,
            "source": "news@acme.example",
            "messageId": provider_id,
            "destination": [email],
            "tags": {"ses:configuration-set": ["mailwright"]},
        },
    }
    if kind == "Delivery":
        body["delivery"] = {"timestamp": at, "recipients": [email], "smtpResponse": "250 2.0.0 OK"}
    elif kind in ("Open", "Click"):
        body[kind.lower()] = {
            "timestamp": at,
            "ipAddress": "192.0.2.1",
            "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Thunderbird/128.0",
        }
        if kind == "Click":
            body["click"]["link"] = "https://acme.example/spring"
    elif kind == "Bounce":
        body["bounce"] = {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": email, "diagnosticCode": "550 5.1.1"}],
            "timestamp": at,
            "feedbackId": str(uuid.uuid4()),
        }
    elif kind == "Complaint":
        body["complaint"] = {
            "complainedRecipients": [{"emailAddress": email}],
            "timestamp": at,
            "feedbackId": str(uuid.uuid4()),
            "complaintFeedbackType": "abuse",
        }
    else:
        body["send"] = {}
    return body


def build_requests(key_pem: bytes, messages: list[tuple[str, str]], total: int) -> list[bytes]:
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    kinds = [kind for kind, share in MIX for _ in range(round(share * 100))]
    unsigned = []
    for i in range(total):
        provider_id, email = messages[i % len(messages)]
        kind = kinds[i % len(kinds)]
        unsigned.append(
            {
                "Type": "Notification",
                "MessageId": str(uuid.uuid4()),
                "TopicArn": TOPIC,
                "Subject": "Amazon SES Email Event Notification",
                # A distinct event each time: the second pass over a message is a later open.
                "Message": json.dumps(ses_body(kind, provider_id, email, _stamp(i))),
                "Timestamp": at,
                "SignatureVersion": "1" if i % 2 else "2",
                "SigningCertURL": CERT_URL,
                "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
            }
        )
    chunks = [unsigned[i : i + 500] for i in range(0, total, 500)]
    with ProcessPoolExecutor(2) as pool:
        signed = pool.map(_sign_chunk, [(key_pem, c) for c in chunks])
        return [request for chunk in signed for request in chunk]


def _stamp(i: int) -> str:
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    return (base + timedelta(milliseconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# ---------------------------------------------------------------- setup and phases


def make_cert(directory: Path) -> bytes:
    """A self-signed SNS signing certificate into SNS_CERT_DIR; returns its key (PEM)."""
    from cryptography.hazmat.primitives import serialization

    from tests.webhook.snsutil import make_key_and_cert

    key, cert_pem = make_key_and_cert(days=30)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CERT_URL.rsplit("/", 1)[-1]).write_bytes(cert_pem)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def seed(url: str, count: int) -> list[tuple[str, str]]:
    from sqlalchemy import insert, select

    from core.infra.db import session_scope
    from core.models import Campaign, Contact, Message, Workspace

    with session_scope(url) as session:
        workspace = Workspace(slug="bench", name="Bench Co")
        session.add(workspace)
        session.flush()
        campaign = Campaign(workspace_id=workspace.id, name="Bench", status="sent")
        session.add(campaign)
        session.flush()
        emails = [f"reader{i}@bench.example" for i in range(count)]
        session.execute(
            insert(Contact),
            [{"workspace_id": workspace.id, "email": e, "source": "bench"} for e in emails],
        )
        ids = dict(
            session.execute(
                select(Contact.email, Contact.id).where(Contact.workspace_id == workspace.id)
            ).all()
        )
        sent = datetime.now(UTC) - timedelta(hours=2)
        rows = [
            {
                "workspace_id": workspace.id,
                "campaign_id": campaign.id,
                "contact_id": ids[e],
                "email": e,
                "status": "sent",
                "provider_message_id": f"0100019-bench-{i:08d}",
                "sent_at": sent,
            }
            for i, e in enumerate(emails)
        ]
        session.execute(insert(Message), rows)
    return [(r["provider_message_id"], r["email"]) for r in rows]


def settle(url: str) -> None:
    """Fresh statistics on the seeded ledger, as autovacuum leaves them a minute after a
    campaign's snapshot; events arrive after sending, not during the bulk insert.

    Without them PostgreSQL guesses 0.5% of the table per id of a `= ANY(ids)` ledger
    look-up and scans the whole table: at 12,600 rows that is 2 ms per batch, twelve
    times the indexed look-up, and a measure of the seed rather than of the webhook."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("VACUUM ANALYZE" if url.startswith("postgresql") else "ANALYZE"))
    engine.dispose()


def group_cpu_seconds(pgid: int, *, kernel_only: bool = False) -> float:
    """CPU time (user + system, or system alone) of the live processes in process group
    `pgid` (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, ...
            total += (0 if kernel_only else int(fields[11])) + int(fields[12])
    return total / ticks


def database_cpu_seconds(url: str) -> float | None:
    """CPU time of the PostgreSQL backends serving `url`'s database (a local server; the
    webhook keeps its connections, so they live through the load). None on SQLite, whose
    work is inside the server processes."""
    if not url.startswith("postgresql"):
        return None
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from core.infra.db import get_engine

    with get_engine(url).connect() as conn:
        pids = conn.execute(
            text(
                "SELECT pid FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"
            ),
            {"db": make_url(url).database},
        ).scalars()
        total = 0.0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def measured_load(proc, port: int, path: Path, concurrency: int, url: str = "") -> dict:
    """The load against `proc`, with the server's (and PostgreSQL's) CPU time per request."""
    before = group_cpu_seconds(proc.popen.pid)
    db_before = database_cpu_seconds(url)
    result = run_load(path, port, concurrency)
    result["server_cpu_us"] = (
        (group_cpu_seconds(proc.popen.pid) - before) / result["requests"] * 1e6
    )
    db_after = database_cpu_seconds(url)
    if db_before is not None and db_after is not None:
        result["database_cpu_us"] = (db_after - db_before) / result["requests"] * 1e6
    return result


def wait_drained(url: str, timeout: float = 300.0) -> float:
    """Seconds until the webhook's inbox is empty (every event made)."""
    from sqlalchemy import func, select

    from core.infra.db import session_scope
    from core.models import SnsMessage

    started = time.perf_counter()
    while True:
        with session_scope(url) as session:
            pending = session.scalar(
                select(func.count()).select_from(SnsMessage).where(SnsMessage.body.is_not(None))
            )
        if not pending:
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"{pending} notifications still waiting after {timeout:.0f} s")
        time.sleep(0.01)


def _merge(phases: list[dict]) -> dict:
    """One figure set for several phases: rates over the summed time, percentiles over
    all latencies, CPU per request over all requests."""
    latencies = sorted(x for p in phases for x in p["latencies"])
    n = len(latencies)
    merged: dict = {
        "requests": n,
        "per_second": n / sum(p["seconds"] for p in phases),
        "p50_ms": latencies[n // 2] * 1000,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000,
        "statuses": {},
        "outcomes": {},
    }
    for key in ("server_cpu_us", "database_cpu_us"):
        if all(key in p for p in phases):
            merged[key] = sum(p[key] * p["requests"] for p in phases) / n
    for p in phases:
        for key in ("statuses", "outcomes"):
            for name, count in p[key].items():
                merged[key][name] = merged[key].get(name, 0) + count
    return merged


def start_server(app: str, env: dict, log: Path, workers: int, app_dir: Path | None = None):
    from tests.processes import Proc, free_port, http_ok, wait_until

    port = free_port()
    args = [
        str(Path(sys.executable).parent / "uvicorn"),
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
        "--backlog",
        "4096",
    ]
    if app_dir is not None:
        args += ["--app-dir", str(app_dir)]
    proc = Proc(args, env, log)
    wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), 60, f"uvicorn ({log})")
    return proc, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=2.0, help="1.0 = 12,000 notifications")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating bare/webhook phases (median ratio)"
    )
    parser.add_argument(
        "--database-url",
        default="",
        help="a PostgreSQL server URL to bench on a new database there (dropped after); "
        "default: a new SQLite file",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mw-bench-webhook-"))
    url = f"sqlite:///{work / 'bench.db'}"
    if args.database_url:
        url = create_pg_database(args.database_url)
    try:
        run(args, work, url)
    finally:
        if args.database_url:
            drop_pg_database(args.database_url, url)
        shutil.rmtree(work, ignore_errors=True)


def _pg_admin(server_url: str, sql: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


def create_pg_database(server_url: str) -> str:
    from sqlalchemy.engine import make_url

    name = f"mw_bench_{uuid.uuid4().hex[:10]}"
    _pg_admin(server_url, f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(server_url: str, url: str) -> None:
    from sqlalchemy.engine import make_url

    from core.infra.db import dispose_all

    dispose_all()
    name = make_url(url).database
    _pg_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(args: argparse.Namespace, work: Path, url: str) -> None:
    os.environ.update(
        {
            "DATA_DIR": str(work),
            "DATABASE_URL": url,
            "SECRET_KEY": "bench-secret-key-with-enough-length-0123456789",
            "ENVIRONMENT": "test",
        }
    )
    from sqlalchemy import func, select

    from core.infra.db import session_scope
    from core.infra.migrate import migrate
    from core.models import Event
    from tests.processes import process_env, start_worker

    total = max(1000, int(12_000 * args.scale))
    rounds = max(1, args.rounds)
    per_round = total // rounds
    total = per_round * rounds
    warmup = max(200, total // 20)
    migrate(url)
    messages = seed(url, total + warmup)
    settle(url)
    key_pem = make_cert(work / "certs")
    t0 = time.perf_counter()
    requests = build_requests(key_pem, messages, total + warmup)
    print(f"signed {len(requests)} notifications in {time.perf_counter() - t0:.1f} s")
    warm_path = work / "warm.pickle"
    warm_path.write_bytes(pickle.dumps(requests[:warmup]))
    chunks = []
    for r in range(rounds):
        chunk = work / f"round{r}.pickle"
        start = warmup + r * per_round
        chunk.write_bytes(pickle.dumps(requests[start : start + per_round]))
        chunks.append(chunk)
    # The bare endpoint answers in a fraction of the time: it gets the same requests
    # repeated, so that each of its phases lasts about as long as the webhook's.
    bare_path = work / "bare.pickle"
    bare_path.write_bytes(pickle.dumps(requests[warmup : warmup + per_round] * BARE_REPEAT))

    env = process_env(
        work,
        url,
        SNS_TOPIC_ARNS=TOPIC,
        SNS_CERT_DIR=str(work / "certs"),
        SECRET_KEY="bench-secret-key-with-enough-length-0123456789",
    )
    (work / "bench_bare.py").write_text(BARE_APP)
    # Both servers up at once; the rounds alternate between them, so that a change in
    # the machine's speed (it is shared) touches both sides of each ratio alike.
    bare_proc, bare_port = start_server(
        "bench_bare:app", env, work / "bare.log", args.workers, work
    )
    proc, port = start_server("webhook.main:app", env, work / "webhook.log", args.workers)
    # The worker makes the events of what the webhook stored (beat: every second).
    worker = start_worker(env, work / "worker.log", concurrency=1, beat=True)
    bares, reals = [], []
    try:
        run_load(warm_path, bare_port, args.concurrency)
        run_load(warm_path, port, args.concurrency)
        wait_drained(url)
        for chunk in chunks:
            bares.append(measured_load(bare_proc, bare_port, bare_path, args.concurrency))
            real = measured_load(proc, port, chunk, args.concurrency, url)
            # The webhook answers once a notification is in its inbox; its events are made
            # during the load and just after. The round ends when the last one is made,
            # so the next bare phase runs on a quiet machine.
            real["drain_s"] = wait_drained(url)
            reals.append(real)
    finally:
        bare_proc.stop()
        proc.stop()
        worker.stop()
    ratios = sorted(w["per_second"] / b["per_second"] for w, b in zip(reals, bares, strict=True))
    # End to end: until the round's last event is made, not only acknowledged.
    e2e = [w["requests"] / (w["seconds"] + w["drain_s"]) for w in reals]
    e2e_ratios = sorted(x / b["per_second"] for x, b in zip(e2e, bares, strict=True))
    for i, (b, w) in enumerate(zip(bares, reals, strict=True)):
        print(
            f"round {i + 1}: bare {b['per_second']:.0f} req/s "
            f"(server CPU {b['server_cpu_us']:.0f} us/request), webhook "
            f"{w['per_second']:.0f} events/s (server CPU {w['server_cpu_us']:.0f} us/event"
            + (f", database {w['database_cpu_us']:.0f} us" if "database_cpu_us" in w else "")
            + f"), ratio {w['per_second'] / b['per_second']:.3f}; events all made "
            f"{w['drain_s'] * 1000:.0f} ms after the last answer, end to end "
            f"{w['requests'] / (w['seconds'] + w['drain_s']):.0f} events/s, ratio "
            f"{w['requests'] / (w['seconds'] + w['drain_s']) / b['per_second']:.3f}"
        )
    bare = _merge(bares)
    real = _merge(reals)
    with session_scope(url) as session:
        stored = session.scalar(select(func.count()).select_from(Event))
    expected = total + warmup
    print(
        f"bare endpoint: {bare['per_second']:.0f} req/s, p99 {bare['p99_ms']:.1f} ms, "
        f"server CPU {bare['server_cpu_us']:.0f} us/request"
    )
    print(
        f"webhook: {real['per_second']:.0f} events/s stored, p50 {real['p50_ms']:.1f} ms, "
        f"p99 {real['p99_ms']:.1f} ms, server CPU {real['server_cpu_us']:.0f} us/event, "
        f"statuses {real['statuses']}, outcomes {real['outcomes']}"
    )
    print(f"events in the database: {stored} of {expected} notifications")
    if stored != expected or real["statuses"] != {"200": total}:
        print((work / "webhook.log").read_text()[-3000:])
    load = os.getloadavg()
    result = {
        "database": url.split(":", 1)[0],
        "notifications": total,
        "rounds": rounds,
        "concurrency": args.concurrency,
        "workers": args.workers,
        "events_per_s": round(real["per_second"]),
        "p50_ms": round(real["p50_ms"], 1),
        "p99_ms": round(real["p99_ms"], 1),
        "bare_req_per_s": round(bare["per_second"]),
        "bare_p99_ms": round(bare["p99_ms"], 1),
        # The median of the rounds' ratios, each from back-to-back phases.
        "ratio_to_bare": round(ratios[len(ratios) // 2], 3),
        "ratios": [round(r, 3) for r in ratios],
        "e2e_events_per_s": round(
            sum(w["requests"] for w in reals) / sum(w["seconds"] + w["drain_s"] for w in reals)
        ),
        "e2e_ratio_to_bare": round(e2e_ratios[len(e2e_ratios) // 2], 3),
        "drain_after_load_ms_max": round(max(w["drain_s"] for w in reals) * 1000),
        "server_cpu_us_per_event": round(real["server_cpu_us"]),
        "bare_server_cpu_us_per_request": round(bare["server_cpu_us"]),
        # PostgreSQL's own processes (not in server_cpu): they share the same cores.
        "database_cpu_us_per_event": (
            round(real["database_cpu_us"]) if "database_cpu_us" in real else None
        ),
        "all_stored": stored == expected,
        "goal_events_per_s": 1500,
        "goal_p99_ms": 100,
        "goal_ratio": 0.3,
        "loadavg": [round(x, 2) for x in load],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--load-child":
        load_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
