"""Test setup: an isolated data dir, migrated databases (SQLite and, when
TEST_DATABASE_URL is set, PostgreSQL), and a session per test rolled back at the end."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

# Settings are read at import: point everything at a private folder first.
_DATA = Path(tempfile.mkdtemp(prefix="mailwright-test-"))
os.environ.update(
    {
        "ENVIRONMENT": "test",
        "DATA_DIR": str(_DATA),
        "SECRET_KEY": "test-secret-key-with-enough-length-0123456789",
        "EMAIL_TRANSPORT": "outbox",
        "APP_BASE_URL": "http://app.example.com",
        "PUBLIC_BASE_URL": "http://track.example.com",
        # bcrypt's minimum cost: a user costs a millisecond to make instead of 0.25 s.
        "BCRYPT_ROUNDS": "4",
    }
)
for _var in ("DATABASE_URL", "BROKER_URL", "OUTBOX_DIR", "ROLLUP_PATH", "OPENAI_API_KEY"):
    os.environ.pop(_var, None)

import pytest  # noqa: E402
from sqlalchemy import Engine, create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from core.infra import clock, jobs  # noqa: E402
from core.infra.config import settings  # noqa: E402
from core.infra.db import create_db_engine, dispose_all  # noqa: E402
from core.infra.migrate import migrate  # noqa: E402
from tests.browsers import Chromium  # noqa: E402

PG_ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
CHROMIUM = "/usr/bin/chromium"
BACKENDS = ["sqlite", "postgresql"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--cpu-hog",
        action="store_true",
        help="keep every core busy with a busy loop for the whole session (stress runs)",
    )


@pytest.fixture(scope="session", autouse=True)
def _cpu_hog(request: pytest.FixtureRequest) -> Iterator[None]:
    """With --cpu-hog, one busy-looping process per core, stopped when the session ends."""
    if not request.config.getoption("--cpu-hog"):
        yield
        return
    import subprocess
    import sys

    loop = "while True: pass"
    hogs = [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(os.cpu_count() or 1)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if "browser" in item.keywords and not Path(CHROMIUM).exists():
            item.add_marker(pytest.mark.skip(reason=f"{CHROMIUM} is not installed"))
        if "redis" in item.keywords and not REDIS_URL:
            item.add_marker(pytest.mark.skip(reason="TEST_REDIS_URL is not set"))
        if "redis" in item.keywords:
            # One Redis database for all: its queues and limiter keys are shared, so these
            # run one after another in one xdist worker (--dist loadgroup).
            item.add_marker(pytest.mark.xdist_group("redis"))
        if "postgres" in item.keywords and not PG_ADMIN_URL:
            item.add_marker(pytest.mark.skip(reason="TEST_DATABASE_URL is not set"))
    _name_xdist_groups(config, items)
    # Longest first: browser tests, then the other slow ones (processes), then the many short
    # ones. xdist hands each worker the next test as it runs low, so short tests at the end
    # fill the gaps, where browser tests last left one worker idle for most of a long test.
    items.sort(
        key=lambda item: 0 if "browser" in item.keywords else 1 if "slow" in item.keywords else 2
    )


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """AppTest page tests run on one backend: PostgreSQL when TEST_DATABASE_URL is set (so
    `make test` covers the pages on it), SQLite otherwise (`make test-fast`).

    A page test drives app.py and commits to a live database (`live_db`); what it checks is
    the page, and the SQL under it runs on both backends in each package's core tests. Both
    backends doubled the pages' share of the suite (about 200 s of test time on a loaded
    machine, 2026-12-05) for nothing the core tests do not already cover."""
    from tests.pages import apptest

    if (
        getattr(metafunc.module, "new_app", None) is apptest.new_app
        and "live_db" in metafunc.fixturenames
        and not any(
            m.args and m.args[0] == "backend"
            for m in metafunc.definition.iter_markers("parametrize")
        )
    ):
        from tests.processes import PROCESS_BACKEND

        metafunc.parametrize("backend", [PROCESS_BACKEND])


def _name_xdist_groups(config, items) -> None:
    """Put each test's xdist_group into its node id, as --dist loadgroup expects.

    pytest-xdist 3.8 does this by setting `item._nodeid`, which pytest 9 no longer reads (a
    node id lives in `item._id`): without this, every xdist_group was ignored and the Redis
    tests ran on both workers at once (checked 2026-12-05)."""
    if not getattr(config.option, "loadgroup", False):  # set in xdist workers only
        return
    from _pytest.nodeid import coerce_node_id

    for item in items:
        names = {
            str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
            for mark in item.iter_markers("xdist_group")
        }
        if names and "@" not in item.nodeid:
            item._id = coerce_node_id(f"{item.nodeid}@{'_'.join(sorted(names))}")


def _pg_url(dbname: str) -> str:
    return make_url(PG_ADMIN_URL).set(database=dbname).render_as_string(hide_password=False)


def _pg_admin(sql: str) -> None:
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(sql))
    engine.dispose()


class Databases:
    """Migrated template databases, copied cheaply for tests that need a fresh one.

    A PostgreSQL database costs little to create from the template (0.2 s) but seconds to
    drop: DROP DATABASE forces a checkpoint (2 to 5 s each here, 2026-12-05), and a run
    made some hundred of them, dropped one by one at the end of each xdist worker's session
    (over a minute of wall clock). So `lease` hands out a used database again once `give_back`
    has emptied it (TRUNCATE … RESTART IDENTITY, 0.3 s): the same as a fresh one, since the
    migrations write no rows but alembic_version's."""

    def __init__(self) -> None:
        self.sqlite_template = _DATA / "template.db"
        migrate(f"sqlite:///{self.sqlite_template}")
        self.pg_template = ""
        self.created: list[str] = []
        self._idle: list[str] = []  # emptied PostgreSQL databases, ready to lease again
        self._tables: list[str] = []
        if PG_ADMIN_URL:
            self.pg_template = f"mw_tpl_{uuid.uuid4().hex[:10]}"
            _pg_admin(f'CREATE DATABASE "{self.pg_template}"')
            self.created.append(self.pg_template)
            migrate(_pg_url(self.pg_template))
            dispose_all()

    def fresh(self, backend: str) -> str:
        """A new migrated database of `backend`, as a URL."""
        if backend == "sqlite":
            path = _DATA / f"db-{uuid.uuid4().hex[:10]}.db"
            shutil.copy(self.sqlite_template, path)
            return f"sqlite:///{path}"
        if not PG_ADMIN_URL:
            pytest.skip("TEST_DATABASE_URL is not set")
        name = f"mw_t_{uuid.uuid4().hex[:10]}"
        _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.pg_template}"')
        self.created.append(name)
        return _pg_url(name)

    def lease(self, backend: str) -> str:
        """A database as good as `fresh(backend)`, reusing one given back if there is one."""
        if backend == "postgresql" and self._idle:
            return self._idle.pop()
        return self.fresh(backend)

    def give_back(self, url: str) -> None:
        """Empty a leased PostgreSQL database for the next lease (SQLite files are left)."""
        if not url.startswith("postgresql"):
            return
        # What DROP DATABASE … WITH (FORCE) did: no session of the test's processes stays.
        _pg_admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{make_url(url).database}' AND pid <> pg_backend_pid()"
        )
        engine = create_engine(url, poolclass=NullPool)
        try:
            self._empty(engine)
        except Exception as exc:  # a lock still held, say: drop_all drops it, lease makes another
            warnings.warn(f"not reusing {make_url(url).database}: {exc}", stacklevel=2)
            return
        finally:
            engine.dispose()
        self._idle.append(url)

    def _empty(self, engine: Engine) -> None:
        with engine.begin() as conn:
            if not self._tables:
                self._tables = list(
                    conn.scalars(
                        text(
                            "SELECT quote_ident(tablename) FROM pg_tables "
                            "WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
                        )
                    )
                )
            conn.execute(text("SET LOCAL lock_timeout = '10s'"))
            conn.execute(text(f"TRUNCATE {', '.join(self._tables)} RESTART IDENTITY CASCADE"))

    def drop_all(self) -> None:
        dispose_all()
        for name in reversed(self.created):
            _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def session_stack() -> Iterator[contextlib.ExitStack]:
    """Things shared by the tests of one pytest process (one xdist worker), closed when the
    session ends: the browser tests' Streamlit server (tests/browser/conftest.py) and
    Chromium."""
    with contextlib.ExitStack() as stack:
        yield stack


@pytest.fixture(scope="session")
def chromium(session_stack: contextlib.ExitStack) -> Chromium:
    """The pytest process's headless Chromium; `chromium.new_page(**context_options)` gives a
    page in a context of its own. The `page` fixture is in tests/browser/conftest.py."""
    browser = Chromium()
    session_stack.callback(browser.close)
    return browser


@pytest.fixture(scope="session")
def databases() -> Iterator[Databases]:
    dbs = Databases()
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def shared_urls(databases: Databases) -> dict[str, str]:
    """One database per backend shared by all rolled-back tests."""
    urls = {"sqlite": databases.fresh("sqlite")}
    if PG_ADMIN_URL:
        urls["postgresql"] = databases.fresh("postgresql")
    return urls


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql" and not PG_ADMIN_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    return request.param


@pytest.fixture
def session(backend: str, shared_urls: dict[str, str]) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test.

    Services may flush and even commit (commits become savepoint releases)."""
    engine = create_db_engine(shared_urls[backend])
    connection = engine.connect()
    trans = connection.begin()
    sess = Session(bind=connection, join_transaction_mode="create_savepoint")
    try:
        yield sess
    finally:
        sess.close()
        trans.rollback()
        connection.close()
        engine.dispose()


@pytest.fixture
def live_db(backend: str, databases: Databases, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh migrated database that the code under test commits to (AppTest, processes).

    settings.database_url points at it for the test. A PostgreSQL one is emptied afterwards
    and leased to a later test (Databases.lease)."""
    url = databases.lease(backend)
    monkeypatch.setattr(settings, "database_url", url)
    yield url
    dispose_all()
    databases.give_back(url)


@pytest.fixture(autouse=True)
def _isolation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list]:
    """Each test gets its own outbox, a reset clock, and a recorder instead of Celery."""
    monkeypatch.setattr(settings, "outbox_dir", tmp_path / "outbox")
    sent: list = []
    jobs.set_dispatcher(lambda name, args, kwargs: sent.append((name, args, kwargs)))
    clock.reset()
    yield sent
    jobs.set_dispatcher(None)
    clock.reset()
    # Each live test has its own database: close the pooled connections of its engine, or
    # PostgreSQL runs out of connection slots a few hundred tests later.
    dispose_all()


@pytest.fixture
def enqueued(_isolation: list) -> list:
    """The tasks that code under test sent, as (name, args, kwargs)."""
    return _isolation


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep each phase's report on the test item, for fixtures to see how the test went."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
