"""What every part of the rollups shares: the file and its lock, the table list, errors."""

from __future__ import annotations

import fcntl
import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from core.infra.config import settings
from core.infra.errors import MailwrightError, ValidationFailed

log = logging.getLogger(__name__)


# Table documentation: the README and the Data page show these.
TABLES: dict[str, str] = {
    "campaigns": "one row per campaign: totals and rates (same definitions as the report)",
    "campaign_daily": "per campaign and UTC day: deliveries, opens, clicks, bounces, …",
    "campaign_hourly": "per campaign and UTC hour: the same figures as campaign_daily",
    "link_clicks": "per campaign and link: unique and total human clicks",
    "campaign_domains": "per campaign and recipient domain: recipients, delivered, opens, …",
    "contact_growth_daily": "per UTC day: contacts added, lost (unsubscribed, complained, "
    "hard-bounced) and the cumulative number of contacts",
    "workspace_daily": "per UTC day: messages sent (campaigns and automations), deliveries, "
    "bounces, complaints, opens, clicks",
    "automations": "one row per automation: its name, messages sent and failed, deliveries, "
    "unique opens and clicks, bounces, complaints, unsubscribes and rates",
    "automation_daily": "per automation, step and UTC day: sent, delivered, unique opens and "
    "clicks, bounces, complaints, unsubscribes",
    "rollup_info": "when the file was built and up to which event id",
}


CHUNK_ROWS = 200_000


STAGES: dict[str, float] = {}  # seconds per stage of the last build in this process


class RollupBusy(MailwrightError):
    """Another rebuild holds the lock."""


class RollupsMissing(MailwrightError):
    """The rollup file has not been built yet."""


@dataclass
class RollupResult:
    path: Path
    built_at: datetime
    events_read: int
    events_total: int
    high_water: int
    seconds: float
    full: bool
    tables: dict[str, int] = field(default_factory=dict)
    stages: dict[str, float] = field(default_factory=dict)
    messages_read: int = 0


def rollup_path(path: Path | None = None) -> Path:
    path = path or settings.rollup_path
    assert path is not None  # Settings defaults it to data_dir / "rollups.duckdb"
    return Path(path)


def _state_path(path: Path) -> Path:
    return path.with_name(path.name + ".state")


@contextmanager
def _exclusive(path: Path, wait: bool) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError as exc:
            raise RollupBusy("A rollup rebuild is already running.") from exc
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def source_key(url: Any) -> str:
    """Names the SQL database a rollup was built from (no password), so a report never
    mixes one database's snapshot with another's events."""
    rendered = make_url(str(url)) if not hasattr(url, "render_as_string") else url
    text = rendered.render_as_string(hide_password=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_table_name(name: str) -> str:
    if name not in TABLES:
        raise ValidationFailed(f"Unknown rollup table {name!r}.")
    return name
