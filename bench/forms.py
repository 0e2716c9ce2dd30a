"""Signup form throughput: distinct signups posted to a real uvicorn (two workers).

    python bench/forms.py [--scale 1.0] [--database-url postgresql+psycopg://...]
                          [--broker-url redis://...]

Modelled on bench/webhook.py, whose load generator it uses: `--concurrency` keep-alive
connections from another process on loopback. The same number of requests goes first to
a bare FastAPI endpoint that only answers a small page (same uvicorn flags), then to
`POST /f/{form_id}` of a double-opt-in form; every post is a new address, from a client
address of its own behind a trusted proxy (X-Forwarded-For). The webhook
answers once the post is checked and in the signup inbox (with the IP's throttle row);
a real worker with beat drains the inbox meanwhile (core.forms.inbox): each signup
creates an unconfirmed contact, appends its consent request, books the address's
throttle row and queues its confirmation mail, which the same worker then sends to the
outbox. No mail is sent on the request path. Each round ends when its last signup is
subscribed (`drain_ms`: after the last answer), so the next bare phase runs on a quiet
machine. Rounds alternate bare and real phases; the ratio is their median. Prints the
figures and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pickle
import shutil
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_spec = importlib.util.spec_from_file_location("bench_webhook", ROOT / "bench" / "webhook.py")
assert _spec is not None and _spec.loader is not None
wb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wb)

SECRET = "bench-secret-key-with-enough-length-0123456789"
BARE_APP = """
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response

app = FastAPI()


@app.post("/f/{form_id}")
async def bare(form_id: str) -> HTMLResponse:
    return HTMLResponse("<!doctype html><h1>Check your inbox</h1>")


@app.get("/healthz")
async def healthz() -> Response:
    return Response(status_code=200)
"""


def seed(url: str) -> str:
    """A workspace, a list and a double-opt-in form; returns the form id."""
    from core.forms.service import FieldSpec, FormInput, create_form
    from core.infra.db import session_scope
    from core.infra.permissions import Actor
    from core.models import ContactList, Workspace

    with session_scope(url) as session:
        workspace = Workspace(slug="bench", name="Bench Co")
        session.add(workspace)
        session.flush()
        news = ContactList(workspace_id=workspace.id, name="News", visibility="public")
        session.add(news)
        session.flush()
        form = create_form(
            session,
            Actor.system(workspace.id),
            FormInput(name="Bench", list_ids=[news.id], fields=[FieldSpec("first_name")]),
        )
        return form.id


def build_requests(form_id: str, start: int, count: int) -> list[bytes]:
    from core.forms.service import HONEYPOT, STAMP
    from core.forms.signup import fill_stamp

    stamp = fill_stamp(form_id, time.time() - 60)
    out = []
    for i in range(start, start + count):
        body = urllib.parse.urlencode(
            {
                "email": f"signup{i}@bench.example",
                "first_name": f"Reader {i}",
                HONEYPOT: "",
                STAMP: stamp,
            }
        ).encode()
        # Behind a load balancer (TRUSTED_PROXIES=127.0.0.1): each reader from an address
        # of their own, so the per-IP limit applies as it would on the internet.
        client = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
        out.append(
            f"POST /f/{form_id} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            "User-Agent: Mozilla/5.0 (bench)\r\n"
            f"X-Forwarded-For: {client}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
    return out


def wait_drained(url: str, here: bool = False, timeout: float = 300.0) -> float:
    """Seconds until the signup inbox is empty (every signup subscribed); `here`: drain it
    from this process instead of waiting for the worker's beat."""
    from sqlalchemy import func, select

    from core.forms.inbox import drain_signup_backlog
    from core.infra.db import get_sessionmaker, read_scope
    from core.models import SignupInbox

    started = time.perf_counter()
    if here:
        drain_signup_backlog(get_sessionmaker(url))
    while True:
        with read_scope(url) as session:
            pending = session.scalar(select(func.count()).select_from(SignupInbox))
        if not pending:
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"{pending} signups still waiting after {timeout:.0f} s")
        time.sleep(0.01)


def wait_mailed(outbox: Path, expected: int, timeout: float = 300.0) -> int:
    """The confirmation mails in the outbox once all are there (or the timeout passed)."""
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        count = sum(1 for _ in outbox.glob("new/*.eml"))  # a Maildir
        if count >= expected:
            break
        time.sleep(0.2)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 6,000 signups")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--database-url", default="", help="a PostgreSQL server URL (default: a SQLite file)"
    )
    parser.add_argument(
        "--broker-url", default="", help="the Celery broker (default: SQLite, as on a laptop)"
    )
    parser.add_argument(
        "--drain-between",
        action="store_true",
        help="no beat in the worker: drain the inbox from here after each phase (the request "
        "path alone, on a machine that is not also subscribing)",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mw-bench-forms-"))
    url = f"sqlite:///{work / 'bench.db'}"
    if args.database_url:
        url = wb.create_pg_database(args.database_url)
    try:
        run(args, work, url)
    finally:
        if args.database_url:
            wb.drop_pg_database(args.database_url, url)
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path, url: str) -> None:
    os.environ.update(
        {"DATA_DIR": str(work), "DATABASE_URL": url, "SECRET_KEY": SECRET, "ENVIRONMENT": "test"}
    )
    if args.broker_url:  # the drain run from here (--drain-between) queues mails there too
        os.environ["BROKER_URL"] = args.broker_url
    from sqlalchemy import func, select

    from core.infra.db import session_scope
    from core.infra.migrate import migrate
    from core.models import Consent, Contact
    from tests.processes import process_env, start_worker

    total = max(600, int(6_000 * args.scale))
    rounds = max(1, args.rounds)
    per_round = total // rounds
    total = per_round * rounds
    warmup = max(100, total // 20)
    migrate(url)
    form_id = seed(url)
    wb.settle(url)
    warm_path = work / "warm.pickle"
    warm_path.write_bytes(pickle.dumps(build_requests(form_id, 0, warmup)))
    chunks = []
    for r in range(rounds):
        chunk = work / f"round{r}.pickle"
        chunk.write_bytes(pickle.dumps(build_requests(form_id, warmup + r * per_round, per_round)))
        chunks.append(chunk)
    bare_path = work / "bare.pickle"
    bare_path.write_bytes(pickle.dumps(build_requests(form_id, 0, per_round)))

    extra = {"SECRET_KEY": SECRET, "TRUSTED_PROXIES": "127.0.0.1"}
    if args.broker_url:
        extra["BROKER_URL"] = args.broker_url
    env = process_env(work, url, **extra)
    (work / "bench_bare_forms.py").write_text(BARE_APP)
    bare_proc, bare_port = wb.start_server(
        "bench_bare_forms:app", env, work / "bare.log", args.workers, work
    )
    proc, port = wb.start_server("webhook.main:app", env, work / "webhook.log", args.workers)
    # The worker subscribes what the webhook accepted (beat: every second) and sends the
    # confirmation mails; two processes, as on two cores, so that a drain does not wait
    # behind the mail tasks.
    worker = start_worker(env, work / "worker.log", concurrency=2, beat=not args.drain_between)
    bares, reals = [], []
    mails = 0
    try:
        wb.run_load(warm_path, port, args.concurrency)
        wait_drained(url, args.drain_between)
        for chunk in chunks:
            bares.append(wb.measured_load(bare_proc, bare_port, bare_path, args.concurrency))
            real = wb.measured_load(proc, port, chunk, args.concurrency, url)
            real["drain_s"] = wait_drained(url, args.drain_between)
            reals.append(real)
        mails = wait_mailed(work / "outbox", total + warmup)
    finally:
        bare_proc.stop()
        proc.stop()
        worker.stop()
    ratios = sorted(w["per_second"] / b["per_second"] for w, b in zip(reals, bares, strict=True))
    e2e = [w["requests"] / (w["seconds"] + w["drain_s"]) for w in reals]
    for i, (b, w) in enumerate(zip(bares, reals, strict=True)):
        print(
            f"round {i + 1}: bare {b['per_second']:.0f} req/s (server CPU "
            f"{b['server_cpu_us']:.0f} us/request), forms "
            f"{w['per_second']:.0f} signups/s (server CPU {w['server_cpu_us']:.0f} us/signup"
            + (f", database {w['database_cpu_us']:.0f} us" if "database_cpu_us" in w else "")
            + f"), p99 {w['p99_ms']:.1f} ms, ratio {w['per_second'] / b['per_second']:.3f}; "
            f"all subscribed {w['drain_s'] * 1000:.0f} ms after the last answer, end to end "
            f"{e2e[i]:.0f} signups/s"
        )
    bare = wb._merge(bares)
    real = wb._merge(reals)
    with session_scope(url) as session:
        contacts = session.scalar(select(func.count()).select_from(Contact))
        requests = session.scalar(
            select(func.count()).select_from(Consent).where(Consent.action == "request")
        )
    expected = total + warmup
    print(f"bare endpoint: {bare['per_second']:.0f} req/s, p99 {bare['p99_ms']:.1f} ms")
    print(
        f"forms: {real['per_second']:.0f} signups/s, p50 {real['p50_ms']:.1f} ms, "
        f"p99 {real['p99_ms']:.1f} ms, statuses {real['statuses']}"
    )
    print(f"unconfirmed contacts {contacts}, consent requests {requests} of {expected} posts")
    print(f"confirmation mails in the outbox: {mails}")
    if real["statuses"] != {"200": total}:
        print((work / "webhook.log").read_text()[-3000:])
    if mails != expected:
        print((work / "worker.log").read_text()[-3000:])
    result = {
        "database": url.split(":", 1)[0],
        "broker": (args.broker_url or "sqla+sqlite").split(":", 1)[0],
        "signups": total,
        "rounds": rounds,
        "concurrency": args.concurrency,
        "workers": args.workers,
        "signups_per_s": round(real["per_second"]),
        "p50_ms": round(real["p50_ms"], 1),
        "p99_ms": round(real["p99_ms"], 1),
        "bare_req_per_s": round(bare["per_second"]),
        "bare_p99_ms": round(bare["p99_ms"], 1),
        "ratio_to_bare": round(ratios[len(ratios) // 2], 3),
        "ratios": [round(r, 3) for r in ratios],
        "server_cpu_us_per_signup": round(real["server_cpu_us"]),
        "end_to_end_signups_per_s": round(sorted(e2e)[len(e2e) // 2]),
        "drain_ms_after_last_answer": [round(w["drain_s"] * 1000) for w in reals],
        "all_stored": contacts == expected and requests == expected,
        "all_mailed": mails == expected,
        "goal_ratio": 0.3,
        "goal_p99_ms": 100,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
