"""Deleting the files that hold contacts' data once they are no longer needed.

Uploads waiting for an import, import error reports and contact exports are written under
DATA_DIR and carry personal data; nothing else removes them. `sweep_files` deletes those older
than FILE_RETENTION_DAYS (the Celery beat runs it hourly)."""

from __future__ import annotations

import time
from pathlib import Path

from core.infra.config import settings

# Folders under DATA_DIR whose files are swept (their subfolders too).
SWEPT = ("imports", "exports")


def sweep_files(max_age_days: float | None = None, now: float | None = None) -> list[Path]:
    """Delete swept files last modified more than `max_age_days` ago; returns them."""
    days = settings.file_retention_days if max_age_days is None else max_age_days
    cutoff = (time.time() if now is None else now) - days * 86_400
    removed: list[Path] = []
    for name in SWEPT:
        folder = settings.data_dir / name
        if not folder.is_dir():
            continue
        for path in folder.rglob("*"):
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed.append(path)
            except FileNotFoundError:  # a concurrent sweep or a finished job took it
                continue
    return removed
