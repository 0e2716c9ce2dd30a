"""The real app in a real browser: Streamlit (and, when asked, the webhook and a worker)
started on free ports against a fresh database, and headless Debian Chromium."""

from __future__ import annotations

import contextlib
import re
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from core.infra.config import settings
from tests.apptest_db import seed_user
from tests.browsers import Chromium
from tests.helpers import PASSWORD
from tests.processes import Proc, http_ok, process_env, start_streamlit, start_webhook, start_worker


@dataclass
class LiveApp:
    url: str
    email: str
    password: str
    data_dir: Path
    database_url: str
    env: dict[str, str]
    webhook_url: str = ""
    procs: list[Proc] = field(default_factory=list)

    @property
    def outbox(self) -> Path:
        return self.data_dir / "outbox"


def _start(tmp_path: Path, database_url: str, webhook: bool, worker: bool) -> LiveApp:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    extra = {}
    app = LiveApp("", seed_user(), PASSWORD, data_dir, database_url, {})
    if webhook:
        from tests.processes import free_port

        port = free_port()
        extra["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
    app.env = process_env(data_dir, database_url, **extra)
    if webhook:
        proc, app.webhook_url = start_webhook(app.env, tmp_path / "webhook.log")
        app.procs.append(proc)
    if worker:
        app.procs.append(start_worker(app.env, tmp_path / "worker.log", beat=True))
    proc, app.url = start_streamlit(app.env, tmp_path / "streamlit.log")
    app.procs.append(proc)
    return app


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """Browser tests run on SQLite: they test the UI, the data layer is tested elsewhere."""
    return request.param


class _SharedServer:
    """One Streamlit server per pytest process (xdist worker) for the `live_app` tests.

    Starting one costs seconds of CPU (imports, the first run of every page) in each of some
    twenty tests. Between tests `reset` gives the next one what a new server on a new database
    gave: the same migrated database emptied (ids start at 1 again), an empty data folder
    apart from the broker's files, and a seeded owner. A server that died, or served a test
    that failed, is replaced, so one test's trouble does not follow the next one."""

    def __init__(self, base: Path, database_url: str) -> None:
        self.base = base
        self.database_url = database_url
        self.data_dir = base / "data"
        self.data_dir.mkdir()
        self.env = process_env(self.data_dir, database_url)
        self.proc: Proc | None = None
        self.url = ""
        self.starts = 0

    def ensure_running(self) -> None:
        if self.proc is not None and self.proc.popen.poll() is None:
            try:
                if http_ok(f"{self.url}/_stcore/health"):
                    return
            except OSError:
                pass
        self.stop()
        self.starts += 1
        self.proc, self.url = start_streamlit(self.env, self.base / f"streamlit-{self.starts}.log")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    def reset(self) -> None:
        """Empty every table but alembic_version, and the data folder but the broker."""
        path = make_url(self.database_url).database
        assert path, self.database_url
        con = sqlite3.connect(path, timeout=60)
        try:
            con.execute("PRAGMA foreign_keys=OFF")
            tables = [
                name
                for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                if name != "alembic_version"
            ]
            with con:
                for name in tables:
                    con.execute(f'DELETE FROM "{name}"')
        finally:
            con.close()
        for entry in self.data_dir.iterdir():
            if entry.name.startswith(("broker.db", "results.db")):
                continue  # the server's Celery client keeps them open; their queue is unread
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def _shared_server(stack: contextlib.ExitStack, databases, tmp_path_factory) -> _SharedServer:
    global _shared
    if _shared is None:
        _shared = _SharedServer(
            tmp_path_factory.mktemp("shared-streamlit"), databases.fresh("sqlite")
        )
        stack.callback(_forget_shared)
    return _shared


def _forget_shared() -> None:
    global _shared
    if _shared is not None:
        _shared.stop()
    _shared = None


_shared: _SharedServer | None = None


@pytest.fixture
def live_app(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[LiveApp]:
    """Streamlit alone, with a signed-up owner (live_app.email / live_app.password), on a
    database and data folder of its own.

    The server is shared by the tests of one xdist worker and reset between them (see
    _SharedServer); a test marked `own_server` gets a server started for it alone."""
    assert backend == "sqlite", backend
    if request.node.get_closest_marker("own_server"):
        live_db = request.getfixturevalue("live_db")
        app = _start(tmp_path, live_db, webhook=False, worker=False)
        yield app
        for proc in reversed(app.procs):
            proc.stop()
        return
    server = _shared_server(
        request.getfixturevalue("session_stack"),
        request.getfixturevalue("databases"),
        request.getfixturevalue("tmp_path_factory"),
    )
    server.reset()
    monkeypatch.setattr(settings, "database_url", server.database_url)
    server.ensure_running()
    assert server.proc is not None
    app = LiveApp(
        server.url, seed_user(), PASSWORD, server.data_dir, server.database_url, server.env
    )
    app.procs.append(server.proc)
    yield app
    report = getattr(request.node, "rep_call", None)
    if report is None or report.failed:
        server.stop()  # the next test gets a new server, not whatever this one left


@pytest.fixture
def live_stack(live_db: str, tmp_path: Path) -> Iterator[LiveApp]:
    """Streamlit, the webhook and a Celery worker with beat, sharing one database."""
    app = _start(tmp_path, live_db, webhook=True, worker=True)
    yield app
    for proc in reversed(app.procs):
        proc.stop()


@pytest.fixture
def page(chromium: Chromium, tmp_path: Path, request: pytest.FixtureRequest):
    page = chromium.new_page()
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        # What the person would have seen, in the test's output (CI keeps no files).
        with contextlib.suppress(Exception):
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            text = page.locator("body").inner_text(timeout=5_000)[:2000]
            print(f"\n--- page at failure: {page.url}\n{text}\n--- ({tmp_path}/failure.png)")
    with contextlib.suppress(Exception):
        page.context.close()


def sign_in(page, app: LiveApp, path: str = "", heading: str = "Dashboard") -> None:
    """Open `path` signed out, sign in with one click, and wait for `heading` there.

    One click, no retry: a dropped click or a lost address is the bug this checks for."""
    page.goto(f"{app.url}/{path}")
    page.get_by_label("Email", exact=True).fill(app.email)
    page.get_by_label("Password", exact=True).fill(app.password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name=re.compile(f"^{heading}")).first.wait_for(timeout=45_000)
    # The session cookie is written by a script on the first signed-in run; a full page
    # load before it lands would (rightly) ask to sign in again.
    for _ in range(150):
        if any(c["name"] == "mailwright_session" for c in page.context.cookies()):
            return
        page.wait_for_timeout(200)
    raise AssertionError("the session cookie was never set")


def settle(page, timeout: float = 30_000) -> None:
    """Wait until Streamlit has finished drawing a rerun.

    While a rerun draws, the old copy of an element can stay beside its new copy (marked
    `data-stale="true"`) until the run ends; a strict locator then finds two. Call this
    after a click that reruns the page and before finding the next widget."""
    page.wait_for_function(
        "() => !document.querySelector('[data-stale=\"true\"]')", timeout=timeout
    )


def shot(page, tmp_path: Path, name: str) -> Path:
    """A full-page screenshot `name`.png in the test's folder, copied to the folder
    MAILWRIGHT_SHOTS names when it is set (docs/screens/ keeps the README's)."""
    import os

    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    keep = os.environ.get("MAILWRIGHT_SHOTS", "")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    return path
