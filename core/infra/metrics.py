"""Prometheus metrics: counters the code increments where things happen, and gauges read
when Prometheus scrapes (queue depths, the SNS inbox, the rollup file).

Served on the public service's `GET /metrics` and, in a worker, on METRICS_PORT. A process
with several children (uvicorn --workers, Celery's prefork pool) shares its numbers
through prometheus-client's multiprocess mode: PROMETHEUS_MULTIPROC_DIR must be set
before this module is first imported (Procfile.prod and `python -m worker` set it).

No label ever holds an email address, a workspace name or anything else a person wrote:
labels are transports, outcomes, event types, queue names, and campaign and workspace ids.

Per-campaign and per-workspace figures of what is sending now are read from the database
when Prometheus scrapes (`SendingSnapshot`), not kept in gauges: multiprocess mode cannot
drop a label once a process has written it, and a finished campaign's label must go.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from kombu import Connection
from kombu.exceptions import ChannelError
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.orm import Session

from core.infra.config import settings

log = logging.getLogger(__name__)
CONTENT_TYPE = CONTENT_TYPE_LATEST

MESSAGES = Counter(
    "mailwright_messages_total",
    "Ledger messages a sender finished, by transport and outcome (sent, failed, requeued, "
    "uncertain: sent again after a lost worker, possibly a duplicate)",
    ["transport", "outcome"],
)
# Per workspace id (a handful of series): `increase(...[1m])` is its sends of the last
# minute, to hold against mailwright_workspace_send_limit_per_minute.
WORKSPACE_SENT = Counter(
    "mailwright_workspace_sent_total",
    "Mails a workspace's campaigns handed to the transport",
    ["workspace_id"],
)
THROTTLED = Counter(
    "mailwright_send_throttled_total",
    "Throttling replies from the transport that made a sender back off",
    ["transport"],
)
SNS = Counter(
    "mailwright_sns_notifications_total",
    "SNS messages the public service received, by outcome (stored, replay, confirmed, "
    "logged; refused: malformed, forged; deferred: certificate unavailable; error)",
    ["outcome"],
)
EVENTS = Counter(
    "mailwright_events_made_total", "Events made from SES notifications, by type", ["type"]
)
BOUNCES = Counter(
    "mailwright_bounces_made_total",
    "Bounce events made from SES notifications, by bounce_type (hard: Permanent, the kind "
    "the deliverability guard counts; soft: Transient or Undetermined)",
    ["bounce_type"],
)
EVENT_LAG = Histogram(
    "mailwright_event_lag_seconds",
    "From the public service storing an SNS notification to the worker making its events",
    buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800),
)
TRACKING = Counter(
    "mailwright_tracking_hits_total", "Open pixel, click and unsubscribe hits", ["kind"]
)
IMPORT_ROWS = Counter(
    "mailwright_import_rows_total",
    "Rows of finished contact imports, by result (created, updated, skipped: outcome ok; "
    "invalid: outcome error)",
    ["outcome", "result"],
)
AB_DECISIONS = Counter(
    "mailwright_ab_decisions_total",
    "A/B test decisions stored, by outcome (winner: the statistics picked one; "
    "no_difference: no significant difference, the marketer picks; manual: a marketer's pick)",
    ["outcome"],
)
ROLLUP_SECONDS = Gauge(
    "mailwright_rollup_build_seconds",
    "How long the last rollup build took",
    multiprocess_mode="mostrecent",
)
# Read at scrape time (see `scrape`).
QUEUE_DEPTH = Gauge(
    "mailwright_queue_depth",
    "Tasks waiting in each Celery queue",
    ["queue"],
    multiprocess_mode="mostrecent",
)
INBOX_BACKLOG = Gauge(
    "mailwright_sns_inbox_backlog",
    "SNS notifications stored but whose events are not made yet",
    multiprocess_mode="mostrecent",
)
INBOX_AGE = Gauge(
    "mailwright_sns_inbox_oldest_seconds",
    "Age of the oldest notification waiting in the inbox (0 when empty)",
    multiprocess_mode="mostrecent",
)
ROLLUP_AGE = Gauge(
    "mailwright_rollup_age_seconds",
    "Seconds since the rollup file was last replaced",
    multiprocess_mode="mostrecent",
)


def count_chunk(
    transport: str, workspace_id: int, sent: int, uncertain: int, failed: int, requeued: int
) -> None:
    """What one chunk of a send batch came to."""
    if sent:
        WORKSPACE_SENT.labels(str(workspace_id)).inc(sent)
    for outcome, n in (
        ("sent", sent - uncertain),
        ("uncertain", uncertain),
        ("failed", failed),
        ("requeued", requeued),
    ):
        if n:
            MESSAGES.labels(transport, outcome).inc(n)


def count_imported_rows(created: int, updated: int, skipped: int, invalid: int) -> None:
    """The rows of one finished import, per result."""
    for outcome, result, n in (
        ("ok", "created", created),
        ("ok", "updated", updated),
        ("ok", "skipped", skipped),
        ("error", "invalid", invalid),
    ):
        if n:
            IMPORT_ROWS.labels(outcome, result).inc(n)


# Counts that hold only if the caller's transaction commits (an A/B decision, a pick).
_ON_COMMIT = "mailwright_pending_counts"


def count_on_commit(session: Session, count: Callable[[], None]) -> None:
    """Run `count` once `session` commits; a rollback drops it (as jobs.enqueue does)."""
    session.info.setdefault(_ON_COMMIT, []).append(count)


@event.listens_for(Session, "after_commit")
def _count_committed(session: Session) -> None:
    for count in session.info.pop(_ON_COMMIT, []):
        count()


@event.listens_for(Session, "after_soft_rollback")
def _drop_counts(session: Session, previous_transaction) -> None:
    if previous_transaction.parent is None:
        session.info.pop(_ON_COMMIT, None)


@dataclass(frozen=True)
class CampaignSending:
    """A campaign in status sending, as the scrape reads it."""

    campaign_id: int
    pending: int  # rows queued, uncertain or being sent (an A/B test's held rest is not)
    age_seconds: float  # since the campaign started sending


@dataclass(frozen=True)
class WorkspaceRate:
    """A workspace with a campaign sending, and its configured limit."""

    workspace_id: int
    limit_per_second: float


@dataclass(frozen=True)
class SendingSnapshot:
    campaigns: list[CampaignSending] = field(default_factory=list)
    workspaces: list[WorkspaceRate] = field(default_factory=list)


class _SendingCollector(Collector):
    """One scrape's sending figures; only what is sending now has a label."""

    def __init__(self, snapshot: SendingSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[GaugeMetricFamily]:
        pending = GaugeMetricFamily(
            "mailwright_campaign_pending_messages",
            "Ledger rows of a sending campaign still to send (queued, uncertain, sending)",
            labels=["campaign_id"],
        )
        age = GaugeMetricFamily(
            "mailwright_campaign_sending_age_seconds",
            "Seconds since a sending campaign started",
            labels=["campaign_id"],
        )
        for c in self.snapshot.campaigns:
            pending.add_metric([str(c.campaign_id)], c.pending)
            age.add_metric([str(c.campaign_id)], c.age_seconds)
        limit = GaugeMetricFamily(
            "mailwright_workspace_send_limit_per_minute",
            "The configured max send rate (x 60) of a workspace with a campaign sending",
            labels=["workspace_id"],
        )
        for w in self.snapshot.workspaces:
            limit.add_metric([str(w.workspace_id)], w.limit_per_second * 60)
        return [pending, age, limit]


def registry() -> CollectorRegistry:
    """The registry to expose: every process's numbers in multiprocess mode."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    combined = CollectorRegistry()
    multiprocess.MultiProcessCollector(combined)
    return combined


def queue_depths(queues: Iterable[str]) -> dict[str, int]:
    """Messages waiting per queue on BROKER_URL (Redis lists, the SQLite broker's rows)."""
    depths = {}
    timeout = settings.ready_timeout_seconds
    with Connection(settings.broker_url, connect_timeout=timeout) as conn:
        channel = conn.default_channel
        for name in queues:
            try:
                _, count, _ = channel.queue_declare(queue=name, passive=True)
            except ChannelError:  # Redis has no key for an empty list: nothing waits
                count = 0
            depths[name] = count
    return depths


def scrape(
    inbox: tuple[int, float | None] | None = None, sending: SendingSnapshot | None = None
) -> bytes:
    """The exposition text; `inbox` is (backlog, oldest age in s) and `sending` what is
    sending now, both read from the database by the caller."""
    from core.infra.jobs import QUEUES

    try:
        for name, depth in queue_depths(QUEUES).items():
            QUEUE_DEPTH.labels(name).set(depth)
    except Exception:
        log.warning("metrics: could not read the queue depths", exc_info=True)
    if inbox is not None:
        INBOX_BACKLOG.set(inbox[0])
        INBOX_AGE.set(inbox[1] or 0.0)
    path = settings.rollup_path
    if path is not None and path.exists():
        ROLLUP_AGE.set(max(0.0, time.time() - path.stat().st_mtime))
    text = generate_latest(registry())
    if sending is not None:
        now = CollectorRegistry()
        now.register(_SendingCollector(sending))
        text += generate_latest(now)
    return text


def serve(port: int) -> bool:
    """Serve the metrics on `port` (a worker's METRICS_PORT); False when another worker on
    this host already does (they share PROMETHEUS_MULTIPROC_DIR, so it shows theirs too)."""
    try:
        start_http_server(port, addr=settings.bind_host, registry=registry())
    except OSError as exc:
        log.info("metrics: port %s is taken (%s); another worker serves them", port, exc)
        return False
    log.info("metrics on http://%s:%s/metrics", settings.bind_host, port)
    return True
