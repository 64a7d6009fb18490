"""Live-server fixtures: a migrated and seeded database, and the site (and an RQ worker)
running as real subprocesses, as an operator would start them.

A failing test gets the subprocesses' logs appended to its report.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest
import redis
import requests
import sqlalchemy as sa

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FLASK = str(Path(sys.executable).parent / "flask")
REDIS_URL = "redis://127.0.0.1:6379/0"
QUEUES = ("payments", "refunds", "default")  # app/jobs/queues.py QUEUE_NAMES
STARTUP_SECONDS = 20.0
COMMAND_SECONDS = 60.0

# Inherited variables that would change what the subprocesses connect to or how.
_SCRUBBED = (
    "DATABASE_URL", "REDIS_URL", "JOBS_QUEUE_PREFIX", "PUBLIC_BASE_URL", "KEYS_DIR",
    "SECRET_KEY", "TAX_RATE", "APP_ENV", "PAYMENT_GATEWAY_EMULATOR", "FLASK_APP",
    "FLASK_DEBUG", "FLASK_RUN_PORT", "FLASK_RUN_HOST", "BACKGROUND_TICKER",
    "SEED_DEMO_ON_START", "GATEWAY_NOTIFY_SYNC", "DEFAULT_LOCALE",
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def e2e_database_url(tmp_path: Path) -> Iterator[str]:
    """A SQLite file, or a fresh PostgreSQL database when TEST_POSTGRES_URL is set."""
    admin_url = os.environ.get("TEST_POSTGRES_URL")
    if not admin_url:
        yield f"sqlite:///{tmp_path / 'cashier.db'}"
        return
    name = f"cashier_e2e_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield sa.engine.make_url(admin_url).set(database=name).render_as_string(
            hide_password=False
        )
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@dataclass
class LiveProcess:
    """A subprocess in its own process group, its output in files."""

    name: str
    process: subprocess.Popen
    stdout_path: Path
    stderr_path: Path
    _files: list = field(default_factory=list)

    def log(self) -> str:
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(
            errors="replace"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        for handle in self._files:
            handle.close()


@dataclass
class LiveSite:
    base_url: str
    env: dict[str, str]
    tmp: Path
    processes: list[LiveProcess] = field(default_factory=list)
    worker: LiveProcess | None = None

    def url(self, path: str) -> str:
        return self.base_url + path

    def flask(self, *args: str) -> subprocess.CompletedProcess:
        """Run a `flask --app wsgi …` command to completion; fail the test if it fails."""
        result = subprocess.run(
            [FLASK, "--app", "wsgi", *args], cwd=PROJECT_ROOT, env=self.env,
            capture_output=True, text=True, timeout=COMMAND_SECONDS,
        )
        assert result.returncode == 0, (
            f"flask {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
        return result

    def start(self, name: str, *args: str) -> LiveProcess:
        stdout_path = self.tmp / f"{name}.out.log"
        stderr_path = self.tmp / f"{name}.err.log"
        stdout, stderr = stdout_path.open("wb"), stderr_path.open("wb")
        process = subprocess.Popen(
            [FLASK, "--app", "wsgi", *args], cwd=PROJECT_ROOT, env=self.env,
            stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, start_new_session=True,
        )
        live = LiveProcess(name, process, stdout_path, stderr_path, [stdout, stderr])
        self.processes.append(live)
        return live

    def wait_healthy(self, server: LiveProcess) -> dict:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert server.process.poll() is None, f"{server.name} exited:\n{server.log()}"
            try:
                response = requests.get(self.url("/healthz"), timeout=2)
                if response.status_code == 200:
                    return response.json()
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"/healthz never answered 200:\n{server.log()}"
            time.sleep(0.1)

    def stop(self) -> None:
        for live in reversed(self.processes):
            live.stop()


def site_environment(database_url: str, keys_dir: Path, port: int) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in _SCRUBBED}
    env.update(
        APP_ENV="development",
        DATABASE_URL=database_url,
        KEYS_DIR=str(keys_dir),
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        PAYMENT_GATEWAY_EMULATOR="1",
        SECRET_KEY="e2e-secret-key-that-is-long-enough-0000",
        TAX_RATE="0.05",
        # Clients that send no Accept-Language (requests) read English, as the in-process
        # tests do; the browser journeys ask for Chinese, the platform's language.
        DEFAULT_LOCALE="en",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def live_site(
    request: pytest.FixtureRequest, e2e_database_url: str, keys_dir: Path, tmp_path: Path
) -> Iterator[LiveSite]:
    """The migrated, seeded site on a free port; ``request.param`` "rq" adds Redis, a
    queue prefix of its own and ``site.worker``, a running `flask jobs worker`.

    ``keys_dir`` (tests/conftest.py) holds copies of the committed test keys, so the site
    generates none.
    """
    mode = getattr(request, "param", "inline")
    port = free_port()
    env = site_environment(e2e_database_url, keys_dir, port)
    env["MAIL_OUTBOX_DIR"] = str(tmp_path / "mail")  # the console backend's .eml files
    site = LiveSite(f"http://127.0.0.1:{port}", env, tmp_path)
    if mode == "rq":
        site.env["REDIS_URL"] = REDIS_URL
        site.env["JOBS_QUEUE_PREFIX"] = f"e2e-{uuid.uuid4().hex[:12]}"
    request.node.live_site = site
    try:
        site.flask("db", "upgrade")
        site.flask("seed-demo")
        server = site.start(
            "server", "run", "--host", "127.0.0.1", "--port", str(port), "--with-threads",
            "--no-reload",
        )
        if mode == "rq":
            site.worker = site.start("worker", "jobs", "worker")
        health = site.wait_healthy(server)
        assert health["checks"]["database"] == "ok", health
        if mode == "rq":
            assert health["checks"]["redis"] == "ok", health
        yield site
    finally:
        site.stop()
        if mode == "rq":
            delete_queue_keys(site.env["JOBS_QUEUE_PREFIX"])


def delete_queue_keys(prefix: str) -> None:
    """Remove what RQ stored for this run: every key naming the prefix (queues, registries,
    scheduler locks, and the jobs, whose ids carry the prefix too), the queues' entries in
    RQ's queue set, and the dead worker's record."""
    connection = redis.Redis.from_url(REDIS_URL)
    try:
        connection.srem("rq:queues", *(f"rq:queue:{prefix}-{purpose}" for purpose in QUEUES))
        for key in list(connection.scan_iter(match="rq:worker:*")):
            queues = connection.hget(key, "queues")
            if queues is not None and queues.decode().startswith(f"{prefix}-"):
                connection.delete(key)
                connection.srem("rq:workers", key)
        for key in list(connection.scan_iter(match=f"*{prefix}*")):
            connection.delete(key)
    finally:
        connection.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ANN201
    outcome = yield
    report = outcome.get_result()
    site: LiveSite | None = getattr(item, "live_site", None)
    if site is None or not report.failed:
        return
    report.sections.extend(log_sections(site.processes))


def log_sections(processes: list[LiveProcess]) -> list[tuple[str, str]]:
    """Each process's output, as report sections of a failed test."""
    return [
        (f"{live.name} {label}", path.read_text(errors="replace"))
        for live in processes
        for label, path in (("stdout", live.stdout_path), ("stderr", live.stderr_path))
        if path.exists()
    ]
