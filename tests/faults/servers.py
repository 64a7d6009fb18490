"""Servers of a fault test's own, on spare ports, so that stopping, killing and
restarting them disturbs nothing else on the machine: a Redis server and a whole
PostgreSQL cluster (initdb into a temporary folder). Both are always left stopped and
their files removed."""
from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
import sqlalchemy as sa

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
        process.send_signal(signal.SIGCONT)  # a frozen server could not act on SIGTERM
        process.terminate()
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_SECONDS)

    def freeze(self) -> None:
        """SIGSTOP: the server holds its connections but answers nothing, so a client
        hangs mid-command, as on a stalled network."""
        assert self.process is not None, "not running"
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None, "not running"
        self.process.send_signal(signal.SIGCONT)

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


def _postgres_bin_dir() -> Path:
    """The server binaries (initdb, pg_ctl): Debian keeps them out of PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    assert initdb is not None, "no PostgreSQL server binaries (initdb) on this machine"
    return Path(initdb).resolve().parent


@dataclass
class PostgresServer:
    """A PostgreSQL cluster of its own: `initdb` into a temporary folder, one database
    ``cashier``, trust authentication on 127.0.0.1 and a spare port.

    PostgreSQL refuses to run as root, so as root its commands run as the ``postgres``
    user, which then owns the folder.
    """

    port: int
    root: Path
    database: str = "cashier"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    @classmethod
    def create(cls) -> PostgresServer:
        root = Path(tempfile.mkdtemp(prefix="cashier-faults-pg-"))
        if os.geteuid() == 0:
            shutil.chown(root, user="postgres", group="postgres")
        server = cls(port=free_port(), root=root)
        server._run("initdb", "-D", str(server.data_dir), "-U", "postgres", "-A", "trust",
                    "-E", "UTF8", "--no-sync", "--locale=C")
        server.start()
        admin = sa.create_engine(server.url.rsplit("/", 1)[0] + "/postgres",
                                 isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'CREATE DATABASE "{server.database}"')
        finally:
            admin.dispose()
        return server

    def start(self) -> None:
        # fsync off: these clusters hold nothing worth keeping, and a crash here is a
        # killed server process, which loses nothing the kernel already has.
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
                   " -c fsync=off -c full_page_writes=off")
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path), "-o", options,
                  "-w", "-t", str(int(STARTUP_SECONDS)), "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends every session and shuts down cleanly; ``immediate`` is a crash:
        the server processes quit at once and the next start runs crash recovery."""
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w",
                      "-t", str(int(STOP_SECONDS)), "stop")

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _run(self, program: str, *args: str) -> None:
        command = [str(_postgres_bin_dir() / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (
            f"{program} exited {result.returncode}:\n{result.stdout}\n{result.stderr}\n{self.log()}"
        )
