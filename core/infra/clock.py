"""The current time, in one place so tests can move it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import overload

_offset = timedelta(0)
_frozen: datetime | None = None


def now() -> datetime:
    """Aware UTC now, shifted or frozen by tests."""
    if _frozen is not None:
        return _frozen
    return datetime.now(UTC) + _offset


def freeze(at: datetime | None) -> None:
    """Freeze the clock at `at` (aware), or unfreeze with None."""
    global _frozen
    _frozen = at


def advance(delta: timedelta) -> None:
    """Move the clock forward (frozen or not)."""
    global _offset, _frozen
    if _frozen is not None:
        _frozen = _frozen + delta
    else:
        _offset = _offset + delta


def reset() -> None:
    global _offset, _frozen
    _offset = timedelta(0)
    _frozen = None


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
@overload
def as_utc(value: datetime | None) -> datetime | None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
