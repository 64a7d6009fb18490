"""`flask reconcile [--date YYYY-MM-DD] [--channel alipay|wechat]`: reconcile a day's
bills now, whatever earlier runs found (the periodic round does it daily)."""
from __future__ import annotations

from datetime import date, datetime, timedelta

import click
from flask.cli import with_appcontext

from app.config import CHANNELS
from app.money import display_yuan
from app.payments.registry import enabled_channels
from app.reconciliation.matching import Finding
from app.reconciliation.runs import RunOutcome, reconcile_day
from app.timeutil import beijing, now


def _yuan(amount_fen: int | None) -> str:
    return "—" if amount_fen is None else display_yuan(amount_fen)


def describe(finding: Finding) -> str:
    """One line for an operator: the kind, the number, ours against theirs."""
    ours = f"ours {_yuan(finding.ours_amount_fen)} {finding.ours_status or '—'} fee {_yuan(finding.ours_fee_fen)}"
    theirs = (f"theirs {_yuan(finding.theirs_amount_fen)} {finding.theirs_state or '—'} "
              f"fee {_yuan(finding.theirs_fee_fen)}")
    return f"{finding.kind.value:16} {finding.subject:7} {finding.reference}: {ours}; {theirs}"


def _report(outcome: RunOutcome) -> None:
    if outcome.error is not None:
        click.echo(f"{outcome.channel} {outcome.bill_date}: {outcome.error}")
        return
    click.echo(f"{outcome.channel} {outcome.bill_date}: {outcome.lines_checked} line(s) checked, "
               f"{len(outcome.findings)} discrepancy(ies)"
               + (f" ({outcome.new} new)" if outcome.findings else ""))
    for finding in outcome.findings:
        click.echo("  " + describe(finding))
    if outcome.reopened:
        click.echo(f"  {outcome.reopened} resolved discrepancy(ies) found again, open once more")
    if outcome.cleared:
        click.echo(f"  {outcome.cleared} earlier discrepancy(ies) of this day no longer found (still open for staff)")


@click.command("reconcile")
@click.option("--date", "day", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="The Beijing calendar day of the bills (default: yesterday in Beijing).")
@click.option("--channel", type=click.Choice(CHANNELS), default=None,
              help="One channel (default: every enabled channel).")
@with_appcontext
def reconcile_command(day: datetime | None, channel: str | None) -> None:
    """Match a day's channel bills against our payments and refunds; list what differs.

    Exits non-zero when a bill is not ready yet or a channel fails (after reporting
    the other channels).
    """
    bill_date: date = day.date() if day is not None else beijing(now()).date() - timedelta(days=1)
    outcomes = [reconcile_day(name, bill_date) for name in ((channel,) if channel else enabled_channels())]
    for outcome in outcomes:
        _report(outcome)
    failed = [outcome for outcome in outcomes if outcome.error is not None]
    if failed:
        raise click.ClickException("; ".join(
            f"{outcome.channel}: "
            + ("the bill is not ready yet, try again later" if outcome.not_ready else "the channel failed")
            for outcome in failed
        ))
