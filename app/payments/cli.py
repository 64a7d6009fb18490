"""`flask payments health | orphans`: what an operator checks during an incident,
until the back office shows the same."""
from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from app.checkout.models import Order
from app.extensions import db
from app.money import display_yuan
from app.payments.health import health_report
from app.payments.models import OrphanPayment, PaymentAttempt, Refund
from app.payments.registry import enabled_channels

payments_cli = AppGroup("payments", help="Channel health and orphan payments.")


@payments_cli.command("health")
def health_command() -> None:
    """Each enabled channel: offered or resting, and its recent failures."""
    for view in health_report(enabled_channels()):
        state = "ok" if view.healthy else f"resting until {view.unhealthy_until:%Y-%m-%d %H:%M:%S} UTC"
        click.echo(f"{view.channel:8} {state}; {view.failures_in_window} recent failure(s)")
        if view.last_error:
            click.echo(f"         last error: {view.last_error}")
    db.session.rollback()


@payments_cli.command("orphans")
@click.option("--limit", default=50, show_default=True)
def orphans_command(limit: int) -> None:
    """Money no order could simply take: what was done with it, and why."""
    rows = db.session.execute(
        select(OrphanPayment, PaymentAttempt, Order, Refund)
        .join(PaymentAttempt, PaymentAttempt.id == OrphanPayment.attempt_id)
        .join(Order, Order.id == OrphanPayment.order_id)
        .outerjoin(Refund, Refund.id == OrphanPayment.refund_id)
        .order_by(OrphanPayment.id.desc())
        .limit(limit)
    ).all()
    if not rows:
        click.echo("No orphan payments.")
    for orphan, attempt, order, refund in rows:
        outcome = orphan.resolution
        if refund is not None:
            outcome += f" ({refund.refund_no}: {refund.status})"
        click.echo(
            f"{orphan.created_at:%Y-%m-%d %H:%M} {order.order_no} {attempt.channel} "
            f"{attempt.out_trade_no} {display_yuan(orphan.amount_fen)} {outcome}: {orphan.reason}"
        )
    db.session.rollback()
