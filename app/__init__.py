"""CourseCashier: the payment system of a paid-knowledge platform."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from flask import Flask

from app.config import finalize_config, load_config
from app.database import configure_engine, engine_options
from app.extensions import csrf, db, login_manager, migrate

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The application factory. ``config`` overrides the environment (tests use it)."""
    app = Flask(
        __name__,
        instance_path=str(PROJECT_ROOT / "instance"),
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    app.config.update(load_config(app.instance_path, environ=None if config is None else {}))
    if config:
        app.config.update(config)
    finalize_config(app.config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    register_observability(app)
    register_extensions(app)
    register_channels(app)
    register_i18n(app)
    register_blueprints(app)
    register_rate_limits(app)
    register_admin(app)
    register_cli(app)
    register_errors(app)
    register_templates(app)
    register_security_headers(app)
    if app.config["BACKGROUND_TICKER"]:
        from app.jobs.periodic import start_background_ticker

        start_background_ticker(app)
    return app


def register_observability(app: Flask) -> None:
    from app.observability import init_observability

    init_observability(app)  # first: logging is set up before anything logs


def register_extensions(app: Flask) -> None:
    app.config.setdefault(
        "SQLALCHEMY_ENGINE_OPTIONS", engine_options(app.config["SQLALCHEMY_DATABASE_URI"])
    )
    db.init_app(app)
    with app.app_context():
        configure_engine(db.engine)
    # Batch mode lets Alembic alter SQLite tables (it copies them).
    migrate.init_app(
        app, db, directory=str(PROJECT_ROOT / "migrations"), render_as_batch=True, compare_type=True
    )
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "accounts.login"
    login_manager.login_message = "Please log in to continue."
    login_manager.login_message_category = "info"

    from app.accounts.services import load_user

    login_manager.user_loader(load_user)

    from app import models  # noqa: F401  (every table known to the metadata)


def register_channels(app: Flask) -> None:
    from app.payments.keys import ensure_emulator_keys
    from app.payments.registry import init_channels

    if app.config["PAYMENT_GATEWAY_EMULATOR"]:
        ensure_emulator_keys(app.config["KEYS_DIR"])
    init_channels(app)


def register_blueprints(app: Flask) -> None:
    from app.accounts.views import bp as accounts_bp
    from app.api.views import bp as api_bp
    from app.bundles.views import bp as bundles_bp
    from app.cart.views import bp as cart_bp
    from app.catalog.views import bp as catalog_bp
    from app.checkout.views import bp as checkout_bp
    from app.earnings.views import bp as earnings_bp
    from app.health import bp as health_bp
    from app.invoices.views import bp as invoices_bp
    from app.membership.views import bp as membership_bp
    from app.payments.views import bp as payments_bp
    from app.renewal.views import bp as renewal_bp
    from app.wallet.views import bp as wallet_bp

    for blueprint in (catalog_bp, accounts_bp, cart_bp, checkout_bp, earnings_bp, payments_bp, health_bp,
                      renewal_bp):
        app.register_blueprint(blueprint)
    for blueprint in (invoices_bp, wallet_bp, bundles_bp, membership_bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(api_bp)
    csrf.exempt(api_bp)  # bearer-token clients send no cookies, so CSRF cannot apply
    from app.receipts import init_receipts

    init_receipts(app)  # its blueprint, and the receipt key read once

    if app.config["PAYMENT_GATEWAY_EMULATOR"]:
        from app.gateway import init_gateway

        init_gateway(app)


def register_i18n(app: Flask) -> None:
    from app.i18n import init_i18n

    app.config.setdefault("BABEL_DEFAULT_LOCALE", app.config["DEFAULT_LOCALE"])
    init_i18n(app)


def register_rate_limits(app: Flask) -> None:
    from app.security.ratelimits import init_rate_limits

    if app.config["TRUSTED_PROXIES"]:
        # The visitor's address and scheme as the proxies in front of us saw them.
        from werkzeug.middleware.proxy_fix import ProxyFix

        proxies = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]
    init_rate_limits(app)


def register_admin(app: Flask) -> None:
    from app.admin import init_admin
    from app.admin.csp_templates import expose_flask_admin_templates

    expose_flask_admin_templates(app)
    # A fresh Admin per app: see app/admin/__init__.py for why there is no singleton.
    app.extensions["cashier.admin"] = init_admin(app)


def register_cli(app: Flask) -> None:
    from app.accounts.cli import users_cli
    from app.benchdata.cli import bench_cli
    from app.catalog.cli import seed_demo_command
    from app.earnings.cli import earnings_cli
    from app.jobs.cli import jobs_cli
    from app.payments.cli import payments_cli
    from app.reconciliation.cli import reconcile_command

    app.cli.add_command(users_cli)
    app.cli.add_command(jobs_cli)
    app.cli.add_command(payments_cli)
    app.cli.add_command(earnings_cli)
    app.cli.add_command(seed_demo_command)
    app.cli.add_command(bench_cli)
    app.cli.add_command(reconcile_command)


def register_errors(app: Flask) -> None:
    from app.errors import register_error_handlers

    register_error_handlers(app)


def register_security_headers(app: Flask) -> None:
    from app.security.headers import init_security_headers

    init_security_headers(app)


def register_templates(app: Flask) -> None:
    from app.money import display_yuan
    from app.timeutil import beijing

    app.jinja_env.filters["yuan"] = display_yuan
    app.jinja_env.filters["rate"] = lambda bps: f"{bps // 100}.{bps % 100:02d}%"
    app.jinja_env.globals["zip"] = zip
    app.jinja_env.filters["beijing"] = lambda moment: beijing(moment).strftime("%Y-%m-%d %H:%M")
