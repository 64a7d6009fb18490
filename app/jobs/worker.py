"""The RQ worker `flask jobs worker` runs: a SimpleWorker with fewer Redis round trips.

Around each job RQ's worker talks to Redis about itself some twenty times. Most of it is
bookkeeping that must stay (the job's status, its execution, the registries), but three
habits cost round trips for nothing when jobs take milliseconds: a heartbeat is three
commands sent one by one; the worker beats four times per job, three of them within a
millisecond of one that already set the same expiry; and between two jobs it writes
"idle" twice in a row.
"""
from __future__ import annotations

import time

from redis.client import Pipeline
from rq.worker import SimpleWorker

# A heartbeat is skipped only while the worker's keys already live this close to as long
# as it would make them. RQ blocks on the queues for its TTL less 15 seconds between
# beats, so the keys still outlive any wait.
HEARTBEAT_SLACK_SECONDS = 10


class JobWorker(SimpleWorker):
    """RQ's SimpleWorker (jobs run in this process, no fork), writing the same records
    to Redis in fewer round trips."""

    _keys_alive_until = 0.0  # time.monotonic() when the last heartbeat's expiry runs out

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        """RQ's heartbeat (its time, and the expiry of the worker's keys), sent as one
        round trip, and not at all when one made moments ago set the same expiry."""
        ttl = timeout or self.worker_ttl + 60  # RQ's default, as in its own heartbeat
        moment = time.monotonic()
        if pipeline is None and self._keys_alive_until >= moment + ttl - HEARTBEAT_SLACK_SECONDS:
            return
        if pipeline is not None:
            super().heartbeat(timeout, pipeline=pipeline)
        else:
            with self.connection.pipeline(transaction=False) as beat:
                super().heartbeat(timeout, pipeline=beat)
                beat.execute()
        # Each heartbeat resets the expiry, a shorter one too (RQ's before a job's run).
        self._keys_alive_until = moment + ttl

    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        """Write the worker's state, unless Redis already holds that state: every state
        change goes through here, so the last one written is the one stored."""
        if pipeline is None and state == self.get_state():
            return
        super().set_state(state, pipeline=pipeline)
