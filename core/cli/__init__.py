"""CLI sub-commands, one module per domain; each defines `register(subparsers)`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps

from core.infra.errors import MailwrightError


def fail_cleanly(func: Callable[..., int]) -> Callable[..., int]:
    """Turn a domain error into one readable line on stderr and exit status 2."""

    @wraps(func)
    def wrapper(*args, **kwargs) -> int:
        try:
            return func(*args, **kwargs)
        except MailwrightError as exc:
            sys.stderr.write(f"error: {exc}\n")
            return 2

    return wrapper


def out(line: str) -> None:
    """Print one line of command output (stdout is the CLI's interface)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
