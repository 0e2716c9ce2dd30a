"""Starting the real processes (Streamlit, uvicorn, Celery) for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The one backend of a test whose subject is a process boundary (the CLI, a Celery worker,
# uvicorn) rather than the data layer: PostgreSQL when the run has one, else SQLite. Running
# it on both doubled its minutes for the same path through the process; the core functions
# under it run on both backends in the rolled-back tests, and the test itself runs on SQLite
# in `make test-fast` and in any run without TEST_DATABASE_URL.
# Use: @pytest.mark.parametrize("backend", [PROCESS_BACKEND]).
PROCESS_BACKEND = "postgresql" if os.environ.get("TEST_DATABASE_URL") else "sqlite"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what}")


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.status == 200


def process_env(data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    """The environment a Mailwright process needs to share one database and broker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "STREAMLIT_"))}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "ENVIRONMENT": "test",
            "DATA_DIR": str(data_dir),
            "DATABASE_URL": database_url,
            "BROKER_URL": f"sqla+sqlite:///{data_dir / 'broker.db'}",
            "RESULT_BACKEND": f"db+sqlite:///{data_dir / 'results.db'}",
            "OUTBOX_DIR": str(data_dir / "outbox"),
            "SECRET_KEY": os.environ.get("SECRET_KEY", "test-secret-key-with-enough-length-0123"),
            "EMAIL_TRANSPORT": "outbox",
            "BCRYPT_ROUNDS": os.environ.get("BCRYPT_ROUNDS", "4"),
        }
    )
    env.update(extra)
    return env


class Proc:
    """A child process with its log in a file; stopped (whole group) on exit.

    `graceful=False`: stop() kills at once instead of asking first (see start_worker)."""

    def __init__(
        self, args: list[str], env: dict[str, str], log: Path, graceful: bool = True
    ) -> None:
        self.graceful = graceful
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 15) -> None:
        if self.popen.poll() is None and not self.graceful:
            self.kill(signal.SIGKILL)
            self.popen.wait(timeout)
        if self.popen.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.popen.wait(5)
        self._log.close()


def start_streamlit(env: dict[str, str], log: Path) -> tuple[Proc, str]:
    port = free_port()
    proc = Proc(
        [
            str(BIN / "python"),
            "-m",
            "ui.server",
            "run",
            "app.py",
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            # The suite writes many files under the checkout; a watching server overflowed
            # its inotify queue reconciling them and missed a sign-in (CI, 2026-11-26).
            "--server.fileWatcherType",
            "none",
        ],
        env,
        log,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: http_ok(f"{url}/_stcore/health"), 90, f"streamlit ({log})")
    return proc, url


def start_webhook(env: dict[str, str], log: Path, workers: int = 1) -> tuple[Proc, str]:
    port = free_port()
    proc = Proc(
        [
            str(BIN / "uvicorn"),
            "webhook.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        env,
        log,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: http_ok(f"{url}/healthz"), 60, f"webhook ({log})")
    return proc, url


def start_worker(
    env: dict[str, str],
    log: Path,
    concurrency: int = 1,
    beat: bool = False,
    name: str = "w1",
    queues: str | None = None,
) -> Proc:
    """A Celery worker (with beat if asked) taking every queue, or only `queues` (-Q)."""
    args = [
        str(BIN / "celery"),
        "-A",
        "worker.celery_app",
        "worker",
        "--loglevel",
        "INFO",
        "--concurrency",
        str(concurrency),
        "-n",
        f"{name}@%h",
        "--without-gossip",
        "--without-mingle",
    ]
    if beat:
        args.append("--beat")
    if queues:
        args += ["-Q", queues]
    # Stopped by SIGKILL: a worker with embedded beat took 4 s to shut down warm, and at times
    # hung until stop()'s 15 s limit (2026-12-05). Tests stop a worker once they have seen
    # what it did, so its shutdown proves nothing; those about a lost worker kill() it anyway.
    proc = Proc(args, env, log, graceful=False)
    wait_until(lambda: "ready." in proc.log() or proc.popen.poll() is not None, 90, "worker")
    if proc.popen.poll() is not None:
        raise RuntimeError(f"worker died:\n{proc.log()}")
    return proc
