"""The whole site as an operator runs it, on servers of the test's own: the web server
and an RQ worker as real subprocesses (tests/e2e/conftest.py starts them), against a
PostgreSQL cluster and a Redis server that the test may stop, kill or restart.

The test keeps an app of its own on the same database and queues. Through it the test
looks at rows, plays staff and runs the sweeper's round (`tick`) with a clock it moves
forward, instead of waiting out the sweeper's grace periods in real time.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa
from flask import Flask

from app import create_app
from app.extensions import db
from app.jobs.periodic import tick
from tests.conftest import Clock, base_config
from tests.e2e.conftest import LiveProcess, LiveSite, site_environment
from tests.faults.servers import PostgresServer, RedisServer, free_port

QUEUE_PREFIX = "faults"
WAIT_SECONDS = 30.0
POLL_SECONDS = 0.1


@dataclass
class FaultStack:
    postgres: PostgresServer
    redis: RedisServer
    site: LiveSite
    app: Flask
    clock: Clock
    server: LiveProcess | None = None
    worker: LiveProcess | None = None

    @classmethod
    def launch(
        cls, postgres: PostgresServer, redis: RedisServer, keys_dir: Path, tmp: Path
    ) -> FaultStack:
        port = free_port()
        env = site_environment(postgres.url, keys_dir, port)
        env.update(REDIS_URL=redis.url, JOBS_QUEUE_PREFIX=QUEUE_PREFIX)
        site = LiveSite(f"http://127.0.0.1:{port}", env, tmp)
        site.flask("db", "upgrade")
        site.flask("seed-demo")

        config = base_config(postgres.url, keys_dir, tmp)
        clock = Clock(datetime.now(timezone.utc).replace(tzinfo=None))
        config.update(
            CLOCK=clock, REDIS_URL=redis.url, JOBS_QUEUE_PREFIX=QUEUE_PREFIX,
            PUBLIC_BASE_URL=site.base_url, TAX_RATE=env["TAX_RATE"], GATEWAY_NOTIFY_SYNC=False,
        )
        stack = cls(postgres, redis, site, create_app(config), clock)
        try:
            stack.start_server()
            stack.start_worker()
        except BaseException:
            stack.shut_down()
            raise
        return stack

    # --- the processes ------------------------------------------------------------

    def start_server(self) -> LiveProcess:
        port = self.site.base_url.rsplit(":", 1)[1]
        self.server = self.site.start(
            "server", "run", "--host", "127.0.0.1", "--port", port, "--with-threads",
            "--no-reload",
        )
        self.site.wait_healthy(self.server)
        return self.server

    def start_worker(self) -> LiveProcess:
        self.worker = self.site.start("worker", "jobs", "worker")
        return self.worker

    @staticmethod
    def kill(process: LiveProcess) -> None:
        """SIGKILL, as the kernel's OOM killer or a pulled plug would: no handler runs,
        no transaction is committed or rolled back by the process itself."""
        os.killpg(process.process.pid, signal.SIGKILL)
        process.process.wait(timeout=10)

    def shut_down(self) -> None:
        self.site.stop()
        with self.app.app_context():
            db.session.remove()
            db.engine.dispose()
        for connection in self.app.extensions.get("cashier.redis", {}).values():
            connection.close()

    # --- looking and acting -------------------------------------------------------

    def rows(self, sql: str, **params: Any) -> list[tuple]:
        """Rows of a query, read on a connection of its own (outside the app)."""
        engine = sa.create_engine(self.postgres.url)
        try:
            with engine.connect() as connection:
                return [tuple(row) for row in connection.execute(sa.text(sql), params)]
        finally:
            engine.dispose()

    def value(self, sql: str, **params: Any) -> Any:
        [(value,)] = self.rows(sql, **params)
        return value

    def sweep(self, seconds_later: float = 600) -> dict[str, int]:
        """The sweeper's round, as if it ran ``seconds_later`` from the test's clock:
        it finds in the database what should have happened by then and enqueues it for
        the worker."""
        self.clock.advance(seconds=seconds_later)
        with self.app.app_context():
            try:
                return tick()
            finally:
                db.session.remove()

    def flask(self, *args: str) -> subprocess.CompletedProcess:
        return self.site.flask(*args)


def wait_until(condition: Callable[[], bool], what: str, seconds: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting ({seconds:.0f} s) until {what}"
        time.sleep(POLL_SECONDS)
