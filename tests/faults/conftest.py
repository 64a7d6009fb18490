"""Fault fixtures: servers of the test's own (tests/faults/servers.py) and, on top of
them, the whole site as an operator runs it (tests/faults/stack.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.e2e.conftest import log_sections
from tests.faults.servers import PostgresServer, RedisServer, free_port
from tests.faults.stack import FaultStack


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(port=free_port(), log_path=tmp_path / "redis-server.log")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer.create()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def fault_stack(
    postgres_server: PostgresServer,
    redis_server: RedisServer,
    keys_dir: Path,
    tmp_path: Path,
) -> Iterator[FaultStack]:
    stack = FaultStack.launch(postgres_server, redis_server, keys_dir, tmp_path)
    try:
        yield stack
    finally:
        stack.shut_down()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ANN201
    outcome = yield
    report = outcome.get_result()
    stack = getattr(item, "funcargs", {}).get("fault_stack")
    if not isinstance(stack, FaultStack) or not report.failed:
        return
    report.sections.extend(log_sections(stack.site.processes))
    report.sections.append(("postgres log", stack.postgres.log()))
