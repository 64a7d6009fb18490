"""`flask jobs worker | scheduler | tick`."""
from __future__ import annotations

import logging
import time

import click
from flask import current_app
from flask.cli import AppGroup
from prometheus_client import start_http_server
from rq.serializers import JSONSerializer

from app.extensions import db
from app.jobs.periodic import tick
from app.jobs.queues import QUEUE_NAMES, queue_name, redis_connection
from app.jobs.worker import JobWorker
from app.observability.metrics import process_registry

log = logging.getLogger(__name__)

jobs_cli = AppGroup("jobs", help="Background jobs: RQ worker, scheduler, periodic tick.")


@jobs_cli.command("worker")
@click.option("--burst", is_flag=True, help="Exit once the queues are empty.")
@click.option("--metrics-port", type=int, default=None,
              help="Serve this worker's job metrics at http://<--metrics-host>:PORT/ (a worker on a "
                   "host of its own; next to the site, share PROMETHEUS_MULTIPROC_DIR instead).")
@click.option("--metrics-host", default="127.0.0.1", show_default=True,
              help="The address --metrics-port listens on (no token there: keep it private).")
def worker_command(burst: bool, metrics_port: int | None, metrics_host: str) -> None:
    """Run an RQ worker inside the app context.

    A SimpleWorker runs jobs in this process: no fork and no re-import per job, so the
    app, its connection pool and its channel keys are set up once (`JobWorker` is one,
    with fewer round trips to Redis).
    """
    if not current_app.config.get("REDIS_URL"):
        raise click.ClickException("REDIS_URL is not set: jobs run inline, no worker needed")
    if metrics_port is not None:
        start_http_server(metrics_port, addr=metrics_host, registry=process_registry())
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
        try:
            tick()
        except Exception:  # noqa: BLE001 - a lost database connection, say: the next round retries
            log.exception("periodic tick failed")
        finally:
            db.session.remove()
        time.sleep(interval)
