"""One settings object for the app, the worker and the webhook."""

from __future__ import annotations

import ipaddress
import secrets
import time
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {
    "",
    "changeme",
    "change-me",
    "secret",
    "dev",
    "development",
    "please-change",
}


class Settings(BaseSettings):
    """Read from the environment and an optional `.env`; every default serves a laptop."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "production", "test"] = "development"
    data_dir: Path = Path("data")
    database_url: str = ""
    broker_url: str = ""
    result_backend: str = ""
    secret_key: str = ""
    public_base_url: str = "http://127.0.0.1:8000"
    app_base_url: str = "http://127.0.0.1:8501"
    allow_signup: bool = False
    demo_password: str = ""

    email_transport: Literal["outbox", "smtp", "ses"] = "outbox"
    outbox_dir: Path | None = None
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    smtp_timeout: float = 30.0
    aws_region: str = "us-east-1"
    ses_configuration_set: str = ""
    system_from_email: str = "no-reply@mailwright.local"

    openai_api_key: str = ""
    openai_base_url: str = ""
    openai_model: str = "gpt-4o-mini"
    openai_timeout: float = 60.0

    rollup_path: Path | None = None
    rollup_interval_seconds: int = 300

    sns_topic_arns: str = ""
    sns_cert_dir: Path | None = None

    send_batch_size: int = 500
    login_lockout_attempts: int = 5
    login_lockout_minutes: int = 15
    reset_token_minutes: int = 60
    # bcrypt's cost (2^N rounds): 12 takes about 0.25 s a hash here. Production may raise
    # it; the tests lower it to 4 (the minimum), which only makes hashes cheaper to guess.
    bcrypt_rounds: int = Field(default=12, ge=4, le=16)
    session_cookie_days: float = 7.0

    rate_limit_backend: Literal["database", "redis"] = "database"
    redis_url: str = Field(default="", description="used by the Redis rate limiter")

    # Contacts import: files with more rows than this import in the Celery worker (the page
    # shows the job's progress); smaller ones import while the page waits. Uploads are kept
    # under DATA_DIR/imports, which the worker must see too (same host or a shared volume).
    import_inline_max_rows: int = 50_000
    # Uploaded files, import error reports and exports hold contacts' personal data: they are
    # deleted this many days after they were written (beat runs the sweep hourly).
    file_retention_days: float = 7.0
    # Contact imports: the largest upload, and the most an .xlsx may unpack to.
    max_upload_mb: float = 100.0
    max_xlsx_unpacked_mb: float = 1024.0
    # The Data page's queries: DuckDB's memory limit and threads, per query.
    data_query_memory_mb: int = 1024
    data_query_threads: int = 1

    # Webhook group commit: SNS notifications arriving together share one transaction.
    # Writers: transactions in flight per webhook process. One: the request path's
    # transaction only stores notifications (about a millisecond), and a second writer
    # halves the batches: bench/webhook.py on PostgreSQL measured a median ratio to the
    # bare endpoint of 0.39 with one against 0.30 with two. And the largest batch.
    webhook_writers: int = 1
    webhook_batch_size: int = 500
    # The webhook answers SNS once a notification is in its inbox; the worker makes its
    # events every SNS_DRAIN_SECONDS (beat), this many notifications per transaction.
    webhook_drain_batch: int = 500
    sns_drain_seconds: float = 1.0

    # Sending; SEND_BATCH_SIZE above is the ledger rows one batch task owns.
    # A message left in "sending" longer than this belongs to a lost worker: recovered.
    send_lease_seconds: float = 120.0
    # A batch task that has sent for this long hands the rest of its range to a new task,
    # so every task ends well inside the worker's time limit (SEND_BATCH_SECONDS + 300).
    send_batch_seconds: float = 120.0
    # How often beat starts due scheduled campaigns and recovers stalled ones.
    send_tick_seconds: float = 15.0
    # Transient errors (not throttling) are retried this many times before a message fails.
    send_max_attempts: int = 5
    # Longest back-off after a throttling reply, in seconds.
    send_max_backoff: float = 30.0
    # Fraction of the max send rate actually used, so clock jitter never exceeds the limit.
    send_rate_headroom: float = 0.95

    # A/B tests: how often beat decides due tests and releases the held rest.
    ab_tick_seconds: float = 60.0
    # Automations: how often beat looks for a segment trigger's newly matching contacts and a
    # date trigger's contacts (each a query over the workspace's contacts).
    automation_trigger_seconds: float = 60.0

    # Signup forms (core.forms). A hosted form posted sooner than this after it was served
    # is a bot's: refused silently. Posts per client IP per hour, across webhook processes.
    form_min_fill_seconds: float = 3.0
    form_posts_per_ip_per_hour: int = 60
    # Confirmation mails one address may receive in any 24 hours (no mail-bombing).
    form_confirmations_per_day: int = 3
    # A confirmation link works this many days; unconfirmed contacts are deleted after
    # UNCONFIRMED_RETENTION_DAYS with their consent attempts (beat, hourly).
    form_confirm_days: float = 7.0
    unconfirmed_retention_days: float = 30.0
    # The public service answers a signup once it is in the signup inbox; the worker
    # subscribes it every SIGNUP_DRAIN_SECONDS (beat), this many per transaction (small:
    # on SQLite a drain transaction holds the write lock the webhook's requests wait for).
    signup_drain_seconds: float = 1.0
    signup_drain_batch: int = 50
    # How long a webhook process keeps a form's definition before reading it again: an
    # edit to a form reaches its POST handling within this many seconds.
    form_cache_seconds: float = 5.0

    # The public service behind a reverse proxy or load balancer: the addresses (IPs or
    # CIDRs, comma-separated) whose X-Forwarded-For is believed. Empty: the direct peer
    # is the client. See core.infra.clientip.
    trusted_proxies: str = ""

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        for part in value.replace(";", ",").split(","):
            if part.strip():
                try:
                    ipaddress.ip_network(part.strip(), strict=False)
                except ValueError:
                    raise ValueError(f"{part.strip()!r} is not an IP address or CIDR") from None
        return value

    # Operations (issue 20). Logs: "text" (the default) or "json", one object per line.
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # `make run-prod` (python -m core run-prod, Procfile.prod): the address the app and the
    # public service listen on (a reverse proxy or load balancer sits in front), their
    # ports, the public service's uvicorn workers, the Celery worker processes and each
    # one's pool size, and the queues they consume ("" = all; see worker/celery_app.py).
    bind_host: str = "127.0.0.1"
    app_port: int = Field(default=8501, ge=1, le=65535)
    public_port: int = Field(default=8000, ge=1, le=65535)
    web_concurrency: int = Field(default=2, ge=1, le=64)
    worker_processes: int = Field(default=2, ge=1, le=64)
    worker_concurrency: int = Field(default=2, ge=1, le=256)
    worker_queues: str = ""
    # run-prod's workers given only the `events` queue (the SNS inbox drain, the signup
    # inbox), one pool process each, so a long send never delays events; 0: none, the
    # WORKER_PROCESSES workers take `events` too.
    events_workers: int = Field(default=1, ge=0, le=16)
    # Metrics (core.infra.metrics): a worker serves them on METRICS_PORT (0: not at all);
    # the public service's /metrics asks for `Authorization: Bearer METRICS_TOKEN` when set.
    metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_token: str = ""
    # /readyz: how long each check (database, broker, migrations) may take.
    ready_timeout_seconds: float = Field(default=3.0, gt=0, le=60)

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'mailwright.db'}"
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{self.data_dir / 'broker.db'}"
        if not self.result_backend:
            self.result_backend = f"db+sqlite:///{self.data_dir / 'celery-results.db'}"
        if self.outbox_dir is None:
            self.outbox_dir = self.data_dir / "outbox"
        if self.rollup_path is None:
            self.rollup_path = self.data_dir / "rollups.duckdb"
        if not self.secret_key:
            if self.environment == "production":
                raise ValueError("SECRET_KEY must be set in production")
            self.secret_key = _generated_secret(self.data_dir)
        elif self.environment == "production" and (
            self.secret_key.lower() in PLACEHOLDER_SECRETS or len(self.secret_key) < 32
        ):
            raise ValueError("SECRET_KEY is a placeholder or shorter than 32 characters")
        return self

    @property
    def topic_arns(self) -> set[str]:
        return {arn.strip() for arn in self.sns_topic_arns.split(",") if arn.strip()}

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _generated_secret(data_dir: Path) -> str:
    """A per-installation key kept in `data/secret_key`, created on first run."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        # "x" makes creation exclusive: two processes starting together agree on one key.
        with open(path, "x") as fh:
            path.chmod(0o600)
            fh.write(secrets.token_urlsafe(48))
    except FileExistsError:
        pass
    for _ in range(50):
        key = path.read_text().strip()
        if key:
            return key
        time.sleep(0.01)
    raise RuntimeError(f"{path} is empty")


settings = Settings()
