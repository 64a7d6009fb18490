"""Fault fixtures: a Redis server of the test's own, on a spare port, so stopping it
disturbs nothing else on the machine. It is always left stopped."""
from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest
import redis

STARTUP_SECONDS = 10.0
STOP_SECONDS = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RedisServer:
    """A `redis-server` subprocess without persistence; `stop()` and `start()` again on
    the same port stand for an outage and its end."""

    port: int
    log_path: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.process is None, "already running"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--daemonize", "no",
                ],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        self._wait_until_answering()

    def stop(self) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        process.terminate()
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_SECONDS)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert self.process is not None
            assert self.process.poll() is None, f"redis-server exited:\n{self.log()}"
            probe = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
            try:
                if probe.ping():
                    return
            except redis.ConnectionError:
                pass
            finally:
                probe.close()
            assert time.monotonic() < deadline, f"redis-server never answered:\n{self.log()}"
            time.sleep(0.05)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(port=free_port(), log_path=tmp_path / "redis-server.log")
    try:
        server.start()
        yield server
    finally:
        server.stop()
