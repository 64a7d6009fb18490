"""`flask earnings new-key | rotate-keys | close-statements`: operator tasks."""
from __future__ import annotations

import click
from flask.cli import AppGroup

from app.accounts.mfa import rotate_totp_secrets
from app.earnings.bank_accounts import rotate_bank_accounts
from app.earnings.statements import close_statement, due_periods, instructors_due
from app.extensions import db
from app.fieldcrypto import FieldKeyError, generate_key_entry
from app.fieldkeys import field_keyring

earnings_cli = AppGroup("earnings", help="Field encryption keys and statements.")


@earnings_cli.command("new-key")
@click.argument("key_id")
def new_key_command(key_id: str) -> None:
    """Print a new FIELD_ENCRYPTION_KEY entry; put it first in the variable to rotate."""
    try:
        click.echo(generate_key_entry(key_id))
    except FieldKeyError as error:
        raise click.ClickException(str(error)) from None


@earnings_cli.command("rotate-keys")
def rotate_keys_command() -> None:
    """Re-seal every field under the current (first) key: bank account numbers and staff
    second-factor secrets."""
    changed = rotate_bank_accounts()
    secrets = rotate_totp_secrets()
    db.session.commit()
    key_id = field_keyring().current_key_id
    click.echo(f"{changed} account number(s) re-sealed under key {key_id}")
    click.echo(f"{secrets} second-factor secret(s) re-sealed under key {key_id}")


@earnings_cli.command("close-statements")
def close_statements_command() -> None:
    """Close every ended month now (the scheduler does this on the first of the month)."""
    for instructor_id in instructors_due():
        for period in due_periods(instructor_id):
            close_statement(instructor_id, period)
            db.session.commit()
            click.echo(f"instructor {instructor_id}: closed {period}")
