"""`flask users create`, `flask users token` and `flask users reset-second-factor`."""
from __future__ import annotations

import click
from flask.cli import AppGroup
from flask_babel import force_locale

from app.accounts import mfa, services
from app.accounts.models import ROLES
from app.extensions import db

users_cli = AppGroup("users", help="Manage users and API tokens.")


@users_cli.command("create")
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(ROLES), default="learner", show_default=True)
@click.option("--name", default="")
@click.password_option()
def create_command(email: str, role: str, name: str, password: str) -> None:
    """Create a user, for example a staff member."""
    try:
        services.create_user(email, password, name, role)
    except services.AccountError as error:
        with force_locale("en"):  # the command line speaks English, as the back office does
            raise click.ClickException(error.message) from None
    db.session.commit()
    click.echo(f"created {role} {services.normalize_email(email)}")


@users_cli.command("token")
@click.argument("email")
@click.option("--name", default="cli", show_default=True)
def token_command(email: str, name: str) -> None:
    """Print a new API token for EMAIL (shown once; only its hash is stored)."""
    user = services.find_user(email)
    if user is None:
        raise click.ClickException(f"no user {email}")
    token = services.create_token(user.id, name)
    db.session.commit()
    click.echo(token)


@users_cli.command("reset-second-factor")
@click.argument("email")
@click.option("--reason", required=True, help="Written to the audit log.")
def reset_second_factor_command(email: str, reason: str) -> None:
    """Remove EMAIL's second factor and end their sessions; they set up a new one at the
    next login. For when no other admin can do it in the back office. Audited."""
    user = services.find_user(email)
    if user is None:
        raise click.ClickException(f"no user {email}")
    try:
        mfa.reset_second_factor(user.id, None, reason)
    except services.AccountError as error:
        with force_locale("en"):
            raise click.ClickException(error.message) from None
    db.session.commit()
    click.echo(f"second factor of {user.email} reset")
