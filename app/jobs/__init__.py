"""The single enqueue seam (DESIGN.md §4).

With ``REDIS_URL`` a job goes to RQ; without it, it runs in-process right away. Either
way it must be called only after the transaction that wrote the job's rows committed:
a job that runs before its row is visible finds nothing to do.
"""
from __future__ import annotations

import logging

from flask import current_app

from app.jobs.queues import JOB_SPECS, rq_queue
from app.jobs.runner import REQUEST_ID_META, run_job
from app.observability.context import current_request_id

log = logging.getLogger(__name__)


def enqueue(name: str, *args: int | str) -> bool:
    """Run job ``name`` (a key of `JOB_SPECS`) with primitive arguments, after commit.

    Never raises for a queue outage: the row is in the database, and the sweeper finds
    work whose job was lost. Returns False when the queue could not take the job (the
    caller may run it itself). The job's log records carry the request id this runs
    under (inline, the job runs inside it; on RQ, it travels in the job's meta).
    """
    spec = JOB_SPECS[name]
    if not current_app.config.get("REDIS_URL"):
        run_job(name, *args)
        return True
    request_id = current_request_id()
    meta = {REQUEST_ID_META: request_id} if request_id else None
    try:
        queue = rq_queue(spec.queue)
        # One round trip: RQ sends its commands in two without a pipeline of ours.
        with queue.connection.pipeline() as pipeline:
            queue.enqueue(
                spec.function_path,
                args=list(args),
                # Namespaced like the queues: deployments (or test runs) sharing one Redis
                # must not overwrite each other's job hashes, whose ids are per-database.
                job_id=f"{current_app.config['JOBS_QUEUE_PREFIX']}-{spec.job_id(*args)}",
                retry=spec.retry(),
                failure_ttl=7 * 24 * 3600,
                meta=meta,
                pipeline=pipeline,
            )
            pipeline.execute()
    except Exception as error:  # noqa: BLE001 - any Redis failure leaves the work to the sweeper
        log.warning("could not enqueue %s%r: %s", name, args, type(error).__name__)
        return False
    return True

