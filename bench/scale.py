"""The measured scale-out run (issue 20): a campaign to the outbox on PostgreSQL and Redis
through N real Celery worker processes (concurrency 1 each), while a driver posts signed SNS
delivery notifications (as SES would) for the mails already sent to 2 uvicorn workers of the
public service, a dedicated `events` worker makes their events, and a reader asks for the
campaign's report every few seconds.

    .venv/bin/python bench/scale.py                         # 1,000,000 recipients, 4 then 1
    .venv/bin/python bench/scale.py --recipients 20000 --workers 4,1

Each run gets a database of its own on the PostgreSQL server (created, then dropped) and a
Redis database number (flushed). Reports per run: mails/s, events/s, event lag p99 (the SNS
Timestamp to the event row, overall and in the worst minute), CPU-seconds per 1,000 mails
(the sending workers' process groups) and per 1,000 events (the public service and the events
worker), PostgreSQL's own CPU, peak RSS per process, and the check that no mail is lost or
sent twice (ledger rows = recipients; every row sent once; one outbox file per row).
Prints its figures and, as its last line, one JSON object of headline figures and ratios.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import importlib.util
import json
import os
import queue
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "bench"))
# bench/send.py seeds the campaign (contacts by generate_series); importing it sets a
# SQLite environment that main() replaces before anything reads the settings.
import send as campaign_bench  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_webhook", ROOT / "bench" / "webhook.py")
assert _spec is not None and _spec.loader is not None
webhook_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(webhook_bench)

TOPIC = "arn:aws:sns:us-east-1:123456789012:mailwright-scale"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-scale.pem"
SECRET = "bench-secret-key-with-enough-length-0123456789"
# The sending workers take what Procfile.prod's `worker` line takes, but maintenance: a
# rollup rebuild of the growing ledger in the middle would be measured as sending.
SENDING_QUEUES = "sending,celery"


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


# ---------------------------------------------------------------- the SES side


def make_signer(directory: Path):
    """A signing certificate the public service trusts (SNS_CERT_DIR) and a function that
    signs a notification as SNS does (SignatureVersion 2, SHA256withRSA). A 1024-bit key:
    the driver signs on the fly, and its CPU is the bench's, not the system's."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from core.ingest.sns import string_to_sign
    from tests.webhook.snsutil import make_key_and_cert

    key, pem = make_key_and_cert(key_size=1024)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CERT_URL.rsplit("/", 1)[-1]).write_bytes(pem)

    def sign(provider_id: str, email: str) -> bytes:
        at = _iso(datetime.now(UTC))
        body = webhook_bench.ses_body("Delivery", provider_id, email, at)
        message = {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": TOPIC,
            "Subject": "Amazon SES Email Event Notification",
            "Message": json.dumps(body),
            "Timestamp": at,
            "SignatureVersion": "2",
            "SigningCertURL": CERT_URL,
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        }
        signature = key.sign(string_to_sign(message), padding.PKCS1v15(), hashes.SHA256())
        message["Signature"] = base64.b64encode(signature).decode()
        return json.dumps(message).encode()

    return sign


class Driver:
    """Posts a Delivery notification for each mail it finds sent, at most `rate` per
    second, from `posters` keep-alive connections; signed at the moment it is posted."""

    def __init__(self, url: str, cid: int, port: int, rate: float, sign, posters: int = 16):
        self.url, self.cid, self.port, self.rate, self.sign = url, cid, port, rate, sign
        self.todo: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self.stop = threading.Event()
        self.posted = 0
        self.failed = 0
        self.first_post: float | None = None
        self.last_post: float | None = None
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._feed, daemon=True)] + [
            threading.Thread(target=self._post, daemon=True) for _ in range(posters)
        ]
        self.posters = posters

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def _feed(self) -> None:
        """Reads newly sent mails and paces them into the posters' queue.

        Every row below the lowest id still pending is final, and was read before: each
        read covers only the rows from there up (the ranges the workers have in hand)."""
        from sqlalchemy import select

        from core.infra.db import read_scope
        from core.models import Message

        low, seen, buffer = 0, set(), []
        tick, last_read = 0.1, 0.0
        while not self.stop.is_set():
            started = time.monotonic()
            if started - last_read >= 0.5:
                last_read = started
                with read_scope(self.url) as s:
                    pending = [
                        s.scalar(
                            select(Message.id)
                            .where(Message.campaign_id == self.cid, Message.status == status)
                            .order_by(Message.id)
                            .limit(1)
                        )
                        for status in ("queued", "sending", "uncertain")
                    ]
                    rows = s.execute(
                        select(Message.id, Message.provider_message_id, Message.email)
                        .where(
                            Message.campaign_id == self.cid,
                            Message.status == "sent",
                            Message.id >= low,
                        )
                        .order_by(Message.id)
                        .limit(50_000)
                    ).all()
                buffer.extend((pid, email) for mid, pid, email in rows if mid not in seen)
                seen.update(mid for mid, _, _ in rows)
                low = min((i for i in pending if i is not None), default=low)
                seen = {mid for mid in seen if mid >= low}
                # Fresh mails first; when sending outruns the driver, older ones are skipped.
                del buffer[: max(0, len(buffer) - int(self.rate * 10))]
            # Only as many as the posters can take: a backlog would age the notifications
            # before they are even posted, and measure the driver instead of the system.
            take = min(max(0, int(self.rate * 0.5) - self.todo.qsize()), int(self.rate * tick) or 1)
            for item in buffer[:take]:
                self.todo.put(item)
            del buffer[:take]
            time.sleep(max(0.0, tick - (time.monotonic() - started)))
        for _ in range(self.posters):
            self.todo.put(None)

    def _post(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while True:
            item = self.todo.get()
            if item is None:
                break
            body = self.sign(*item)
            try:
                conn.request(
                    "POST",
                    "/sns/ses",
                    body=body,
                    headers={
                        "Content-Type": "text/plain; charset=UTF-8",
                        "x-amz-sns-message-type": "Notification",
                    },
                )
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                ok = False
            with self.lock:
                now = time.monotonic()
                self.first_post = self.first_post or now
                self.last_post = now
                if ok:
                    self.posted += 1
                else:
                    self.failed += 1
        conn.close()


class Reader(threading.Thread):
    """What a marketer watching the campaign asks for: its report, every `every` seconds."""

    def __init__(self, url: str, actor, cid: int, every: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.url, self.actor, self.cid, self.every = url, actor, cid, every
        self.stop = threading.Event()
        self.seconds: list[float] = []

    def run(self) -> None:
        from core.campaigns import service as campaigns
        from core.infra.db import read_scope

        while not self.stop.wait(self.every):
            started = time.perf_counter()
            with read_scope(self.url) as s:
                campaigns.campaign_status(s, self.actor, self.cid)
            self.seconds.append(time.perf_counter() - started)


# ---------------------------------------------------------------- where a mail's CPU goes


def outbox_write_ms(directory: Path, size: int, n: int = 20_000) -> float:
    """CPU milliseconds per message the outbox transport spends writing `size` bytes as a
    file (write to tmp/, rename into new/), beside the campaign's files."""
    from core.mail.transports import OutboxTransport, Outgoing

    transport = OutboxTransport(directory)
    raw = b"X" * size
    started = time.process_time()
    for i in range(n):
        transport.send(Outgoing(raw=raw, sender="a", recipients=["b"], key=f"probe-{i}"))
    return (time.process_time() - started) / n * 1000


def breakdown(url: str, cid: int, outbox: Path, cpu_per_mail_ms: float) -> dict:
    """A sending process's CPU per mail, split: composing (render and MIME, one core, no
    database), writing the outbox file, and the rest (claims, ledger writes, Celery, limiter)."""
    sizes = [p.stat().st_size for p in list((outbox / "new").iterdir())[:200]]
    size = int(statistics.mean(sizes)) if sizes else 4000
    compose_ms = 1000 / campaign_bench.compose_rate(cid, url)
    write_ms = outbox_write_ms(outbox, size)
    return {
        "mail_bytes": size,
        "compose_ms_per_mail": round(compose_ms, 3),
        "outbox_write_ms_per_mail": round(write_ms, 3),
        "rest_ms_per_mail": round(cpu_per_mail_ms - compose_ms - write_ms, 3),
        "outbox_share_of_sending_cpu": round(write_ms / cpu_per_mail_ms, 3),
    }


# ---------------------------------------------------------------- processes


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of one process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pids(pgid: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            pids.append(int(stat.parent.name))
    return pids


def peak_rss_mb(pgid: int) -> list[float]:
    """VmHWM (the peak resident set) of each live process of group `pgid`, in MB."""
    peaks = []
    for pid in _pids(pgid):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(round(int(line.split()[1]) / 1024, 1))
        except OSError:
            continue
    return sorted(peaks, reverse=True)


def recipients_to_contacts(recipients: int) -> int:
    """bench/send.py's seed unsubscribes every 50th contact: contacts for `recipients`."""
    n = recipients
    while n - n // 50 < recipients:
        n += 1
    return n


# ---------------------------------------------------------------- one run


def run(args: argparse.Namespace, workers: int, work: Path) -> dict:
    from sqlalchemy import func, select, text

    from core.infra.db import dispose_all, session_scope
    from core.infra.migrate import migrate
    from core.models import Campaign, Event, Message, SnsMessage
    from tests.processes import process_env, start_worker, wait_until

    url = webhook_bench.create_pg_database(args.pg)
    outbox = work / f"outbox-{workers}"
    procs = []
    driver = reader = None
    try:
        migrate(url)
        t0 = time.perf_counter()
        actor, cid = campaign_bench.seed(url, recipients_to_contacts(args.recipients))
        webhook_bench.settle(url)
        seed_s = time.perf_counter() - t0
        import redis

        redis.Redis.from_url(args.redis).flushdb()
        sign = make_signer(work / "certs")
        env = process_env(
            work,
            url,
            ENVIRONMENT="test",
            SECRET_KEY=SECRET,
            BROKER_URL=args.redis,
            RESULT_BACKEND=args.redis,
            RATE_LIMIT_BACKEND="redis",
            REDIS_URL=args.redis,
            OUTBOX_DIR=str(outbox),
            SNS_TOPIC_ARNS=TOPIC,
            SNS_CERT_DIR=str(work / "certs"),
            LOG_LEVEL="WARNING",
        )
        public, port = webhook_bench.start_server(
            "webhook.main:app", env, work / f"public-{workers}.log", 2
        )
        procs.append(public)
        # Procfile.prod's events worker (with beat: the inbox drain every SNS_DRAIN_SECONDS).
        events = start_worker(
            env,
            work / f"events-{workers}.log",
            concurrency=1,
            beat=True,
            name="ev",
            queues="events",
        )
        procs.append(events)
        senders = [
            start_worker(
                env,
                work / f"send{i}-{workers}.log",
                concurrency=1,
                name=f"s{i}",
                queues=SENDING_QUEUES,
            )
            for i in range(workers)
        ]
        procs.extend(senders)
        time.sleep(2)  # the processes settle before the clocks start
        cpu = webhook_bench.group_cpu_seconds
        send_cpu0 = sum(cpu(p.popen.pid) for p in senders)
        main_cpu0 = sum(process_cpu_seconds(p.popen.pid) for p in senders)
        sys_cpu0 = sum(cpu(p.popen.pid, kernel_only=True) for p in senders)
        ingest_cpu0 = cpu(public.popen.pid) + cpu(events.popen.pid)
        db_cpu0 = webhook_bench.database_cpu_seconds(url) or 0.0
        self_cpu0 = time.process_time()

        from core.infra import jobs

        jobs.set_dispatcher(None)
        driver = Driver(url, cid, port, args.event_rate, sign)
        reader = Reader(url, actor, cid)
        started = time.perf_counter()
        with session_scope(url) as s:
            s.get(Campaign, cid).scheduled_at = campaign_bench.campaigns.clock.now()
        client = jobs.client()
        client.conf.update({"broker_url": args.redis, "result_backend": args.redis})
        client.send_task("worker.tasks_sending.start_campaign", args=[cid])
        driver.start()
        reader.start()

        def status() -> str:
            with session_scope(url) as s:
                return s.scalar(select(Campaign.status).where(Campaign.id == cid)) or ""

        wait_until(lambda: status() == "sent", args.timeout, "campaign sent")
        send_s = time.perf_counter() - started
        send_cpu = sum(cpu(p.popen.pid) for p in senders) - send_cpu0
        # Celery's main processes (the broker, acks, the pool's pipes) apart from the pool
        # processes that run the tasks.
        main_cpu = sum(process_cpu_seconds(p.popen.pid) for p in senders) - main_cpu0
        sys_cpu = sum(cpu(p.popen.pid, kernel_only=True) for p in senders) - sys_cpu0
        driver.finish()
        reader.stop.set()

        def drained() -> bool:
            with session_scope(url) as s:
                return not s.scalar(
                    select(func.count()).select_from(SnsMessage).where(SnsMessage.body.is_not(None))
                )

        wait_until(drained, 300, "every notification made into events")
        ingest_cpu = cpu(public.popen.pid) + cpu(events.popen.pid) - ingest_cpu0
        db_cpu = (webhook_bench.database_cpu_seconds(url) or 0.0) - db_cpu0
        driver_cpu = time.process_time() - self_cpu0
        rss = {
            "public": peak_rss_mb(public.popen.pid),
            "events_worker": peak_rss_mb(events.popen.pid),
            "sending_workers": [peak_rss_mb(p.popen.pid) for p in senders],
        }
        with session_scope(url) as s:
            ledger = s.scalar(select(func.count()).where(Message.campaign_id == cid))
            sent = s.scalar(
                select(func.count()).where(Message.campaign_id == cid, Message.status == "sent")
            )
            # A row claimed twice was handed to the transport twice (a lease lost).
            again = s.scalar(
                select(func.count()).where(Message.campaign_id == cid, Message.attempts > 1)
            )
            first, last = s.execute(
                select(func.min(Message.sent_at), func.max(Message.sent_at)).where(
                    Message.campaign_id == cid
                )
            ).one()
            events_made = s.scalar(
                select(func.count()).where(Event.campaign_id == cid, Event.source == "ses")
            )
            lag = s.execute(
                text(
                    "SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY x), max(x), avg(x)"
                    " FROM (SELECT extract(epoch FROM created_at - occurred_at) AS x"
                    " FROM event WHERE campaign_id = :c AND source = 'ses') AS lags"
                ),
                {"c": cid},
            ).one()
            worst_minute = s.scalar(
                text(
                    "SELECT max(p) FROM (SELECT percentile_cont(0.99) WITHIN GROUP"
                    " (ORDER BY extract(epoch FROM created_at - occurred_at)) AS p"
                    " FROM event WHERE campaign_id = :c AND source = 'ses'"
                    " GROUP BY date_trunc('minute', occurred_at)) AS per_minute"
                ),
                {"c": cid},
            )
            event_span = s.execute(
                select(func.min(Event.occurred_at), func.max(Event.created_at)).where(
                    Event.campaign_id == cid, Event.source == "ses"
                )
            ).one()
        names = os.listdir(outbox / "new")
        files = len(names)
        distinct = len({n.split(".", 1)[0] for n in names})
        for p in procs:  # the breakdown is measured on a quiet stage
            p.stop()
        split = breakdown(url, cid, outbox, send_cpu / sent * 1000)
        span = (event_span[1] - event_span[0]).total_seconds() if events_made else 0.0
        figures = {
            "workers": workers,
            "recipients": ledger,
            "seed_s": round(seed_s, 1),
            "seconds": round(send_s, 1),
            "mails_per_s": round(sent / send_s, 1),
            "send_phase_mails_per_s": round(sent / max(1e-9, (last - first).total_seconds()), 1),
            "cpu_s_sending": round(send_cpu, 1),
            "cpu_per_1000_mails": round(send_cpu / sent * 1000, 3),
            "cpu_per_1000_mails_celery_main": round(main_cpu / sent * 1000, 3),
            "cpu_per_1000_mails_kernel": round(sys_cpu / sent * 1000, 3),
            "events": events_made,
            "events_per_s": round(events_made / span, 1) if span else 0.0,
            "cpu_s_ingest": round(ingest_cpu, 1),
            "cpu_per_1000_events": round(ingest_cpu / max(1, events_made) * 1000, 3),
            "event_lag_p99_s": round(float(lag[0] or 0), 3),
            "event_lag_max_s": round(float(lag[1] or 0), 3),
            "event_lag_avg_s": round(float(lag[2] or 0), 3),
            "event_lag_p99_worst_minute_s": round(float(worst_minute or 0), 3),
            "notifications_posted": driver.posted,
            "notifications_refused": driver.failed,
            "postgres_cpu_s": round(db_cpu, 1),
            "postgres_cpu_per_1000_mails_and_events": round(
                db_cpu / (sent + max(0, events_made)) * 1000, 3
            ),
            "cpu_per_mail_breakdown": split,
            "driver_and_reader_cpu_s": round(driver_cpu, 1),
            "report_reads": len(reader.seconds),
            "report_read_p50_s": round(statistics.median(reader.seconds), 3)
            if reader.seconds
            else None,
            "report_read_max_s": round(max(reader.seconds), 3) if reader.seconds else None,
            "peak_rss_mb": rss,
            "ledger_rows": ledger,
            "sent": sent,
            "outbox_files": files,
            "claimed_twice": again,
            # Not in the ledger, or in it but never sent.
            "lost": args.recipients - sent,
            "duplicates": again + (files - distinct),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
        }
        print(json.dumps(figures), flush=True)
        return figures
    finally:
        if driver is not None:
            driver.finish()
        if reader is not None:
            reader.stop.set()
        for p in procs:
            p.stop()
        dispose_all()
        webhook_bench.drop_pg_database(args.pg, url)
        shutil.rmtree(outbox, ignore_errors=True)


def settle(pg_url: str, quiet_load: float = 1.0, limit_s: float = 180.0) -> None:
    """Start each run from the same state: the last run's clean-up finished, the page cache
    written out and (where this process may) dropped, PostgreSQL checkpointed, the load down.

    A run that followed another one at once paid for it in kernel CPU. Measured at a
    million on a quiet machine, 2026-12-05: whichever run came second spent 0.07-0.18 ms
    more kernel CPU per mail (1 worker: 0.263 CPU-s per 1,000 mails first, 0.357 second;
    4 workers: 0.309 first, 0.490 second). The likely causes, not measured apart: the first
    run's clean-up (a million outbox files deleted, a database of millions of rows
    dropped) still being written, and its 7 GB of mail files in the page cache."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import DBAPIError

    started = time.perf_counter()
    os.sync()
    engine = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("CHECKPOINT"))
    except DBAPIError as exc:  # CHECKPOINT needs a superuser (or pg_checkpoint)
        print(f"no checkpoint: {exc.orig}", flush=True)
    finally:
        engine.dispose()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")  # clean page cache only
    except OSError:
        print("page cache not dropped (not root): run order can show in kernel CPU", flush=True)
    while os.getloadavg()[0] > quiet_load and time.perf_counter() - started < limit_s:
        time.sleep(5)
    print(
        f"settled for {time.perf_counter() - started:.0f} s before the run "
        f"(load average {os.getloadavg()[0]:.2f})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--workers", default="4,1", help="worker process counts, one run each")
    parser.add_argument(
        "--pg",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server URL: each run creates a database there and drops it",
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/9", help="flushed per run")
    parser.add_argument(
        "--event-rate",
        type=float,
        default=300.0,
        help="most Delivery notifications the driver posts per second",
    )
    parser.add_argument("--timeout", type=float, default=7200.0)
    args = parser.parse_args()
    shutil.rmtree(campaign_bench.DATA, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix="mw-bench-scale-"))
    os.environ.update(
        {
            "ENVIRONMENT": "test",
            "DATA_DIR": str(work),
            "SECRET_KEY": SECRET,
            "BROKER_URL": args.redis,
            "RESULT_BACKEND": args.redis,
            "EMAIL_TRANSPORT": "outbox",
        }
    )
    from core.infra.config import settings

    settings.broker_url = args.redis
    settings.result_backend = args.redis
    settings.data_dir = work
    runs = {}
    try:
        for n in [int(x) for x in args.workers.split(",")]:
            settle(args.pg)
            runs[n] = run(args, n, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for n, r in runs.items():
        print(
            f"{n} worker process(es): {r['recipients']} mails in {r['seconds']} s = "
            f"{r['mails_per_s']} mails/s ({r['cpu_per_1000_mails']} CPU-s per 1,000 mails); "
            f"{r['events']} events at {r['events_per_s']}/s "
            f"({r['cpu_per_1000_events']} CPU-s per 1,000), lag p99 {r['event_lag_p99_s']} s "
            f"(worst minute {r['event_lag_p99_worst_minute_s']} s); PostgreSQL "
            f"{r['postgres_cpu_s']} CPU-s; lost {r['lost']}, duplicates {r['duplicates']}"
        )
    four, one = runs.get(4), runs.get(1)
    all_runs = list(runs.values())
    result = {
        "recipients": args.recipients,
        "mails_per_s_4": four["mails_per_s"] if four else None,
        "mails_per_s_1": one["mails_per_s"] if one else None,
        "events_per_s": round(statistics.mean(r["events_per_s"] for r in all_runs), 1),
        "event_lag_p99_s": max(r["event_lag_p99_s"] for r in all_runs),
        "event_lag_p99_worst_minute_s": max(r["event_lag_p99_worst_minute_s"] for r in all_runs),
        "cpu_per_1000_mails_4": four["cpu_per_1000_mails"] if four else None,
        "cpu_per_1000_mails_1": one["cpu_per_1000_mails"] if one else None,
        "cpu_ratio_4_to_1": (
            round(four["cpu_per_1000_mails"] / one["cpu_per_1000_mails"], 3)
            if four and one
            else None
        ),
        "cpu_per_1000_events": round(
            statistics.mean(r["cpu_per_1000_events"] for r in all_runs), 3
        ),
        "lost": sum(r["lost"] for r in all_runs),
        "duplicates": sum(r["duplicates"] for r in all_runs),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
