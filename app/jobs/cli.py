"""`flask jobs worker | scheduler | tick`."""
from __future__ import annotations

import time

import click
from flask import current_app
from flask.cli import AppGroup
from rq.serializers import JSONSerializer

from app.jobs.periodic import tick
from app.jobs.queues import QUEUE_NAMES, queue_name, redis_connection
from app.jobs.worker import JobWorker

jobs_cli = AppGroup("jobs", help="Background jobs: RQ worker, scheduler, periodic tick.")


@jobs_cli.command("worker")
@click.option("--burst", is_flag=True, help="Exit once the queues are empty.")
def worker_command(burst: bool) -> None:
    """Run an RQ worker inside the app context.

    A SimpleWorker runs jobs in this process: no fork and no re-import per job, so the
    app, its connection pool and its channel keys are set up once (`JobWorker` is one,
    with fewer round trips to Redis).
    """
    if not current_app.config.get("REDIS_URL"):
        raise click.ClickException("REDIS_URL is not set: jobs run inline, no worker needed")
    worker = JobWorker(
        [queue_name(name) for name in QUEUE_NAMES],
        connection=redis_connection(),
        serializer=JSONSerializer,
    )
    worker.work(burst=burst, with_scheduler=True)


@jobs_cli.command("tick")
def tick_command() -> None:
    """Run the periodic work once."""
    for name, count in tick().items():
        click.echo(f"{name}: {count}")


@jobs_cli.command("scheduler")
@click.option("--interval", default=30, show_default=True, help="Seconds between ticks.")
def scheduler_command(interval: int) -> None:
    """Run the periodic work forever (one scheduler per deployment)."""
    while True:
        tick()
        time.sleep(interval)
