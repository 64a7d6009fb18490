"""Committing batches: one transaction each, so a crash leaves whole orders only.

On PostgreSQL a thread writes and commits on a connection of its own while the caller
plans the next batch: the server indexes one batch while Python builds the next, and
the two cores of a small machine both work. SQLite has one writer at a time anyway, so
there the caller writes each batch itself, in the session's transaction.
"""
from __future__ import annotations

import threading
from queue import Full, Queue
from typing import Callable

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from app.benchdata.bulk import BatchRows, write
from app.extensions import db

Progress = Callable[[int], None]  # told how many seeded orders are committed


def prepare(connection: Connection) -> None:
    """Per transaction, on PostgreSQL: don't wait for each commit's flush to disk (a
    crash may lose the last batches, never part of one), and skip the foreign-key
    triggers where the role may (as pg_restore --disable-triggers does): every id is
    drawn from its table's own sequence before the rows that point at it are built,
    and tests/test_bench_seed.py checks every foreign key of the seeded rows."""
    connection.execute(text("SET LOCAL synchronous_commit TO OFF"))
    if connection.scalar(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")):
        connection.execute(text("SET LOCAL session_replication_role = replica"))


class InlineWriter:
    """Writes each batch in the session's transaction and commits it."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def submit(self, rows: BatchRows, present: int) -> None:
        write(db.session.connection(), rows)
        db.session.commit()
        self.progress(present)

    def close(self) -> None:
        pass

    def abandon(self) -> None:
        db.session.rollback()


class BackgroundWriter:
    """Writes and commits batches, in order, in a thread with its own connection. At
    most one batch waits, so memory stays bounded; an error stops the thread and is
    raised in the caller at its next submit or at close."""

    def __init__(self, engine: Engine, progress: Progress) -> None:
        self._engine = engine
        self._progress = progress
        self._queue: Queue[tuple[BatchRows, int] | None] = Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bench-seed-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with self._engine.connect() as connection:
                while (item := self._queue.get()) is not None:
                    rows, present = item
                    with connection.begin():
                        prepare(connection)
                        write(connection, rows)
                    self._progress(present)
        except BaseException as error:  # handed to the caller's thread
            self._error = error

    def _put(self, item: tuple[BatchRows, int] | None) -> None:
        while True:
            self._raise_if_failed()
            try:
                self._queue.put(item, timeout=0.5)
                return
            except Full:
                continue

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, rows: BatchRows, present: int) -> None:
        self._put((rows, present))

    def close(self) -> None:
        """Wait for the batches submitted so far to be committed; raises the thread's
        error if it failed."""
        if self._thread.is_alive():
            self._put(None)
            self._thread.join()
        self._raise_if_failed()

    def abandon(self) -> None:
        """The caller failed: let the thread commit what it holds, then stop."""
        while self._thread.is_alive():
            try:
                self._queue.put(None, timeout=0.5)
                break
            except Full:
                continue
        self._thread.join()
