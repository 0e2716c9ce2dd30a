"""Files holding contacts' data (uploads, error reports, exports) are swept after a while."""

from __future__ import annotations

import os
import time

from core.infra.config import settings
from core.infra.retention import sweep_files


def test_old_uploads_reports_and_exports_go_and_the_rest_stays(tmp_path, monkeypatch):
    monkeypatch.setattr(settings, "data_dir", tmp_path)
    now = time.time()
    old = now - 8 * 86_400
    files = {
        "imports/uploads/old.csv": old,
        "imports/import-errors-old.csv": old,
        "exports/contacts-old.xlsx": old,
        "imports/uploads/new.csv": now - 3600,
        "exports/contacts-new.csv": now,
        "outbox/new/old-mail": old,  # not a swept folder
    }
    for name, mtime in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("email\nann@example.com\n")
        os.utime(path, (mtime, mtime))

    removed = sweep_files(max_age_days=7, now=now)

    assert sorted(p.relative_to(tmp_path).as_posix() for p in removed) == [
        "exports/contacts-old.xlsx",
        "imports/import-errors-old.csv",
        "imports/uploads/old.csv",
    ]
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["exports/contacts-new.csv", "imports/uploads/new.csv", "outbox/new/old-mail"]
    assert sweep_files(max_age_days=7, now=now) == []


def test_beat_runs_the_sweep():
    from worker.celery_app import app

    app.loader.import_default_modules()
    entry = app.conf.beat_schedule["sweep-files"]
    assert entry["task"] in app.tasks
