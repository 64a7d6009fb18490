"""`flask bench seed --orders N`: a realistic payment history for the benchmarks."""
from __future__ import annotations

import click
from flask.cli import AppGroup

from app.benchdata.dataset import bench_dataset
from app.benchdata.seeding import BATCH_ORDERS, SeedRefused, seed_history

bench_cli = AppGroup("bench", help="Benchmark data.")


@bench_cli.command("seed")
@click.option("--orders", type=click.IntRange(min=1), required=True,
              help="How many seeded orders the database should hold; only the missing ones are added.")
@click.option("--batch", type=click.IntRange(min=1000), default=BATCH_ORDERS, show_default=True,
              help="Orders per commit.")
def seed_command(orders: int, batch: int) -> None:
    """Seed learners, orders, payments, refunds and their ledger entries up to N orders.

    Repeatable: the same N gives the same history, and a larger N extends it."""
    try:
        run = seed_history(orders, batch, progress=lambda present, seconds: click.echo(
            f"  {present} orders ({seconds:.1f} s)"))
    except SeedRefused as error:
        raise click.ClickException(str(error)) from None
    if run.added == 0:
        click.echo(f"{run.present} seeded orders present already (asked for {orders}); nothing to add")
    else:
        click.echo(f"added {run.added} orders in {run.seconds:.1f} s; {run.present} seeded orders present")
    dataset = bench_dataset()
    if dataset is not None:
        click.echo(f"learner {dataset.learner_email}, example order {dataset.example_order_no}")
        click.echo(f"big instructor {dataset.big_instructor_email} (id {dataset.big_instructor_id}): "
                   f"{dataset.big_sale_lines} sale and {dataset.big_refund_lines} refund lines in "
                   f"{dataset.big_period}")
        click.echo("the same from Python: app.benchdata.bench_dataset()")
