"""Logs for every process: plain text (the default) or, with LOG_FORMAT=json, one JSON object
per line carrying the ids of what was being done when the line was written.

The ids live in context variables, set where the work is known: the Celery task_prerun
signal sets `task_id` (worker/celery_app.py), the public service's middleware `request_id`
(webhook/main.py), the sending pipeline `campaign_id` and, for a one-message chunk (SES,
SMTP), `message_id`. A call can also pass them as `extra={"message_id": ...}`. So a mail can
be followed from the wizard (campaign_id) to the transport (message_id and the provider's
id) to its SNS events (message_id again), whichever process wrote each line.

Email addresses never reach a log line at INFO or below, in either format: they are
replaced by `<email>` (RedactEmails), whatever the caller passed.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

from core.infra.config import settings

IDS = ("campaign_id", "message_id", "task_id", "request_id")
_VARS: dict[str, ContextVar[Any]] = {name: ContextVar(f"mw_{name}", default=None) for name in IDS}

# Loggers that third-party servers give their own handlers (and stop propagating).
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "streamlit")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_MARK = "_mailwright_handler"

Tokens = list[tuple[ContextVar[Any], Token[Any]]]


def bind(**ids: Any) -> Tokens:
    """Set ids (campaign_id=..., task_id=...) for what this context logs next; give the
    result to `unbind` when the work ends. Unknown names raise KeyError."""
    return [(_VARS[name], _VARS[name].set(value)) for name, value in ids.items()]


def unbind(tokens: Tokens) -> None:
    for var, token in reversed(tokens):
        var.reset(token)


@contextmanager
def bound(**ids: Any) -> Iterator[None]:
    """`bind` for the length of a block."""
    tokens = bind(**ids)
    try:
        yield
    finally:
        unbind(tokens)


def current_ids() -> dict[str, Any]:
    """The ids set in this context (those not set are left out)."""
    return {name: var.get() for name, var in _VARS.items() if var.get() is not None}


# An address's domain ends in letters: "user:**@127.0.0.1" (a URL's hidden password) is kept.
EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@(?:[\w-]+\.)+[^\W\d_]{2,}\b")


class RedactEmails(logging.Filter):
    """Replaces email addresses in records at INFO and below with `<email>`.

    Warnings and errors keep their text: whoever reads them needs the detail, and they are
    rare. Contacts' addresses are personal data, and INFO lines are kept for a long time."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.INFO:
            message = record.getMessage()
            if "@" in message:
                redacted = EMAIL.sub("<email>", message)
                if redacted != message:
                    record.msg, record.args = redacted, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, the ids
    known (record attributes first, then the context), process, and the exception."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, var in _VARS.items():
            value = getattr(record, name, None)
            if value is None:
                value = var.get()
            if value is not None:
                data[name] = value
        celery = getattr(record, "data", None)  # Celery's received/succeeded/failed lines
        if "task_id" not in data and isinstance(celery, dict) and celery.get("id"):
            data["task_id"] = celery["id"]
        data["process"] = record.processName
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, default=str, ensure_ascii=False)


def formatter() -> logging.Formatter:
    """The formatter LOG_FORMAT asks for."""
    return JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT)


def adopt(logger: logging.Logger, reformat: bool | None = None) -> None:
    """Give `logger`'s handlers the email redaction, and in json mode the JSON formatter
    (`reformat` overrides that): for handlers a framework made (Celery, uvicorn)."""
    for handler in logger.handlers:
        adopt_handler(handler, reformat)


def adopt_handler(handler: logging.Handler, reformat: bool | None = None) -> None:
    """`adopt` for one handler."""
    reformat = settings.log_format == "json" if reformat is None else reformat
    if not any(isinstance(f, RedactEmails) for f in handler.filters):
        handler.addFilter(RedactEmails())
    if reformat:
        handler.setFormatter(JsonFormatter())


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a line is written (as logging's last resort)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging() -> None:
    """Set up the root logger of a process that is not a Celery worker (the public service,
    Streamlit, the CLI): one handler on stderr, LOG_FORMAT and LOG_LEVEL; and in json mode
    the servers' own loggers (uvicorn, streamlit) write JSON too. Safe to call again."""
    root = logging.getLogger()
    if not any(getattr(h, _MARK, False) for h in root.handlers):
        handler = _Stderr()
        setattr(handler, _MARK, True)
        handler.setFormatter(formatter())
        handler.addFilter(RedactEmails())
        root.addHandler(handler)
    root.setLevel(settings.log_level)
    for name in SERVER_LOGGERS:
        adopt(logging.getLogger(name))
