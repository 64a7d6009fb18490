"""The stack under measurement: a scratch PostgreSQL database, and the processes an
operator runs (gunicorn for the site, RQ workers), beside the gateway emulator and the
bare baseline app, each in a process group of its own with its output in a file.
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

import redis
import requests
import sqlalchemy as sa

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
STARTUP_SECONDS = 60.0
# The emulator stands in for the channels' servers; two workers keep it out of the way.
EMULATOR_WORKERS = 2
# Rate limits stay on (each request still counts in Redis), set far above the load the
# bench makes from its one address and its few learners.
UNLIMITED = "1000000 per minute"
RATE_LIMITS = (
    "RATELIMIT_LOGIN_PER_ADDRESS", "RATELIMIT_LOGIN_PER_ACCOUNT", "RATELIMIT_REGISTER_PER_ADDRESS",
    "RATELIMIT_REGISTER_PER_ACCOUNT", "RATELIMIT_COUPON_PER_USER", "RATELIMIT_QR_PER_USER",
    "RATELIMIT_API_PER_TOKEN",
)


def gunicorn_workers() -> int:
    """The production rule of thumb the README gives: 2 × cores + 1."""
    return 2 * (os.cpu_count() or 1) + 1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log_path: Path

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=15)

    def pids(self) -> list[int]:
        """This process and its children (a gunicorn arbiter's workers)."""
        children = Path(f"/proc/{self.popen.pid}/task/{self.popen.pid}/children")
        found = [self.popen.pid]
        if children.exists():
            found += [int(pid) for pid in children.read_text().split()]
        return found


def peak_rss_mb(pid: int) -> float | None:
    """The process's high-water resident set (VmHWM), in MB (10⁶ bytes, as the target is
    written); None once the process has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1_000_000
    return None


@dataclass
class Stack:
    """Everything one bench run starts; `stop()` ends it all and drops the database."""

    work_dir: Path
    admin_url: str = DEFAULT_POSTGRES_URL
    redis_url: str = DEFAULT_REDIS_URL
    keep_database: bool = False
    database_name: str = field(default_factory=lambda: f"cashier_bench_{uuid.uuid4().hex[:8]}")
    queue_prefix: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:8]}")
    site_port: int = field(default_factory=free_port)
    emulator_port: int = field(default_factory=free_port)
    baseline_port: int = field(default_factory=free_port)
    processes: list[Process] = field(default_factory=list)

    @property
    def database_url(self) -> str:
        return sa.engine.make_url(self.admin_url).set(database=self.database_name).render_as_string(
            hide_password=False
        )

    @property
    def site_url(self) -> str:
        return f"http://127.0.0.1:{self.site_port}"

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    @property
    def baseline_url(self) -> str:
        return f"http://127.0.0.1:{self.baseline_port}"

    def site_env(self) -> dict[str, str]:
        """The site's environment: PostgreSQL, Redis, the channels at the emulator's server.

        APP_ENV stays development only because production refuses the emulator (it takes
        payments that are not real); everything else is as in production: gunicorn,
        PostgreSQL, RQ on Redis, rate limits counted in Redis, no debug.
        """
        env = {
            name: value for name, value in os.environ.items()
            if not name.startswith(("RATELIMIT_", "ALIPAY_", "WECHAT_", "FLASK_"))
        }
        env.update(
            APP_ENV="development",
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            JOBS_QUEUE_PREFIX=self.queue_prefix,
            PUBLIC_BASE_URL=self.site_url,
            PAYMENT_GATEWAY_EMULATOR="1",
            ALIPAY_GATEWAY_URL=f"{self.emulator_url}/gateway/alipay/gateway.do",
            WECHAT_API_BASE_URL=f"{self.emulator_url}/gateway/wechat",
            KEYS_DIR=str(self.work_dir / "keys"),
            SECRET_KEY="bench-secret-key-0123456789abcdefghijklmnop",
            ORDER_TTL_MINUTES="240",
            DEFAULT_LOCALE="en",
            BACKGROUND_TICKER="0",
            PYTHONUNBUFFERED="1",
            **{name: UNLIMITED for name in RATE_LIMITS},
        )
        for name in ("GATEWAY_NOTIFY_SYNC", "SEED_DEMO_ON_START", "TAX_RATE"):
            env.pop(name, None)
        return env

    def emulator_env(self) -> dict[str, str]:
        """The same app serving only as the channels: its QR pages carry its own address,
        and it calls back the notify URL each precreate names (the site's)."""
        env = self.site_env()
        env["PUBLIC_BASE_URL"] = self.emulator_url
        del env["ALIPAY_GATEWAY_URL"], env["WECHAT_API_BASE_URL"]
        return env

    # --- the database --------------------------------------------------------------------

    def create_database(self) -> None:
        admin = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{self.database_name}"')
        admin.dispose()

    def drop_database(self) -> None:
        admin = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.database_name}" WITH (FORCE)')
        admin.dispose()

    def analyze(self) -> None:
        """VACUUM ANALYZE after a bulk load: fresh planner statistics and visibility map,
        as autovacuum would give a production database some minutes later."""
        engine = sa.create_engine(self.database_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
        engine.dispose()

    def flask(self, *args: str, timeout: float = 1800) -> str:
        result = subprocess.run(
            [str(BIN / "flask"), "--app", "wsgi", *args], cwd=PROJECT_ROOT, env=self.site_env(),
            capture_output=True, text=True, timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"flask {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    # --- processes -----------------------------------------------------------------------

    def start(self, name: str, command: list[str], env: dict[str, str]) -> Process:
        log_path = self.work_dir / f"{name}.log"
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                command, cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        process = Process(name, popen, log_path)
        self.processes.append(process)
        return process

    def gunicorn(self, name: str, module: str, port: int, workers: int, env: dict[str, str]) -> Process:
        command = [
            str(BIN / "gunicorn"), "--workers", str(workers), "--bind", f"127.0.0.1:{port}",
            "--log-level", "warning", module,
        ]
        return self.start(name, command, env)

    def start_servers(self) -> tuple[Process, Process, Process]:
        workers = gunicorn_workers()
        site = self.gunicorn("site", "wsgi:app", self.site_port, workers, self.site_env())
        emulator = self.gunicorn(
            "emulator", "wsgi:app", self.emulator_port, EMULATOR_WORKERS, self.emulator_env()
        )
        baseline_env = dict(os.environ, DATABASE_URL=self.database_url, PYTHONUNBUFFERED="1")
        baseline = self.gunicorn(
            "baseline", "bench.baseline_app:app", self.baseline_port, workers, baseline_env
        )
        for process, url in ((site, self.site_url + "/healthz"), (emulator, self.emulator_url + "/healthz"),
                             (baseline, self.baseline_url + "/items/1")):
            wait_until_up(process, url)
        return site, emulator, baseline

    def start_worker(self, name: str = "worker", burst: bool = False) -> Process:
        command = [str(BIN / "flask"), "--app", "wsgi", "jobs", "worker"]
        if burst:
            command.append("--burst")
        return self.start(name, command, self.site_env())

    def wait_for_workers(self, count: int) -> None:
        """Until ``count`` workers listen on this run's queues (a worker imports the app
        first: a job enqueued before then would time the start, not the work)."""
        connection = redis.Redis.from_url(self.redis_url)
        deadline = time.monotonic() + STARTUP_SECONDS
        try:
            while True:
                listening = sum(
                    1 for key in connection.smembers("rq:workers")
                    if self.queue_prefix in (connection.hget(key, "queues") or b"").decode()
                )
                if listening >= count:
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {listening} of {count} workers started")
                time.sleep(0.1)
        finally:
            connection.close()

    def queue_depth(self) -> int:
        connection = redis.Redis.from_url(self.redis_url)
        try:
            return int(connection.llen(f"rq:queue:{self.queue_prefix}-payments"))
        finally:
            connection.close()

    def clear_payments_queue(self) -> None:
        """Drop the jobs still waiting (their inbox rows stay unprocessed: the bench is
        done with them, and a later worker must not spend the cores on them)."""
        connection = redis.Redis.from_url(self.redis_url)
        try:
            connection.delete(f"rq:queue:{self.queue_prefix}-payments")
        finally:
            connection.close()

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        self._forget_queues()
        if not self.keep_database:
            self.drop_database()

    def _forget_queues(self) -> None:
        connection = redis.Redis.from_url(self.redis_url)
        try:
            for key in list(connection.scan_iter(match=f"*{self.queue_prefix}*")):
                connection.delete(key)
            for key in list(connection.smembers("rq:queues")):
                if self.queue_prefix in key.decode():
                    connection.srem("rq:queues", key)
            for key in list(connection.smembers("rq:workers")):
                queues = connection.hget(key, "queues")
                if queues is None or self.queue_prefix in queues.decode():
                    connection.srem("rq:workers", key)
                    connection.delete(key)
        finally:
            connection.close()


def wait_until_up(process: Process, url: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited:\n{process.log_path.read_text(errors='replace')}")
        try:
            if requests.get(url, timeout=10).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass  # still booting: a dozen workers import the app at once
        if time.monotonic() > deadline:
            raise RuntimeError(f"{process.name} never answered {url}")
        time.sleep(0.2)
