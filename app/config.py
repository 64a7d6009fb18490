"""Configuration from the environment (DESIGN.md §5), with defaults for the embedded mode.

`load_config()` reads the environment once per app; nothing here runs at import.
Production (``APP_ENV=production``) fails fast on anything that would be unsafe.
"""
from __future__ import annotations

import os
import re
import secrets
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Mapping

from dotenv import load_dotenv
from limits import parse_many

from app.fieldcrypto import FieldKeyError, parse_keyring
from app.payments.keys import KEY_FILE_VARIABLES, key_file_problem

DEFAULT_PUBLIC_BASE_URL = "http://127.0.0.1:5000"

# Identities of the built-in emulator's merchant: fixed so `make run` needs no setup.
EMULATOR_ALIPAY_APP_ID = "2021000000000001"
EMULATOR_ALIPAY_SELLER_ID = "2088000000000001"
EMULATOR_WECHAT_MCH_ID = "1900000001"
EMULATOR_WECHAT_APP_ID = "wx0000000000000001"
EMULATOR_WECHAT_CERT_SERIAL = "5157F09EFDC096DE15EBE81A47057A7200000001"
EMULATOR_WECHAT_PUBLIC_KEY_ID = "PUB_KEY_ID_0119000000012026112300000000000001"

CHANNELS = ("alipay", "wechat")

ALIPAY_VARIABLES = (
    "ALIPAY_APP_ID",
    "ALIPAY_SELLER_ID",
    "ALIPAY_APP_PRIVATE_KEY_FILE",
    "ALIPAY_PUBLIC_KEY_FILE",
    "ALIPAY_GATEWAY_URL",
)
WECHAT_VARIABLES = (
    "WECHAT_MCH_ID",
    "WECHAT_APP_ID",
    "WECHAT_MCH_PRIVATE_KEY_FILE",
    "WECHAT_MCH_CERT_SERIAL",
    "WECHAT_APIV3_KEY",
    "WECHAT_PLATFORM_PUBLIC_KEY_FILE",
    "WECHAT_PLATFORM_PUBLIC_KEY_ID",
    "WECHAT_API_BASE_URL",
)
CHANNEL_VARIABLES = {"alipay": ALIPAY_VARIABLES, "wechat": WECHAT_VARIABLES}
# Without the emulator these cannot default; key files may still come from KEYS_DIR.
_NEEDED_WITHOUT_EMULATOR = {
    "alipay": ("ALIPAY_APP_ID", "ALIPAY_SELLER_ID", "ALIPAY_GATEWAY_URL"),
    "wechat": (
        "WECHAT_MCH_ID",
        "WECHAT_APP_ID",
        "WECHAT_MCH_CERT_SERIAL",
        "WECHAT_APIV3_KEY",
        "WECHAT_PLATFORM_PUBLIC_KEY_ID",
        "WECHAT_API_BASE_URL",
    ),
}


# Rate limits (app/security/ratelimits.py), each "N per period" or several joined by ";".
# An attacker's repetition is the thing limited: passwords guessed from one network or
# at one account, accounts made in bulk, coupon codes guessed, QR codes (each a request
# to the channel) and API calls. A learner paying normally never meets them.
RATE_LIMIT_DEFAULTS = {
    "RATELIMIT_LOGIN_PER_ADDRESS": "30 per minute; 300 per hour",
    "RATELIMIT_LOGIN_PER_ACCOUNT": "5 per minute; 30 per hour",
    "RATELIMIT_REGISTER_PER_ADDRESS": "10 per hour",
    "RATELIMIT_REGISTER_PER_ACCOUNT": "3 per hour",
    "RATELIMIT_COUPON_PER_USER": "10 per minute; 30 per hour",
    "RATELIMIT_QR_PER_USER": "10 per minute; 60 per hour",
    "RATELIMIT_API_PER_TOKEN": "120 per minute",
    "RATELIMIT_RECEIPT_VERIFY_PER_ADDRESS": "30 per minute; 300 per hour",
}

MIN_SECRET_KEY_LENGTH = 32
# Secret keys this repository itself uses (tests, end-to-end runs): public, so never safe.
KNOWN_SECRET_KEYS = frozenset({
    "test-secret-key-that-is-long-enough-000",
    "e2e-secret-key-that-is-long-enough-0000",
})
# A word that marks a placeholder, standing alone between separators. A random key
# has no separators (hex) or too few for such a word to occur by chance (base64url).
_PLACEHOLDER_WORD = re.compile(
    r"(?:^|[^a-z0-9])(change[-_ ]?me|changeme|default|dev|development|example|insecure|"
    r"placeholder|replace[-_ ]?me|secret|test|testing|e2e|xxx+)(?=$|[^a-z0-9])"
)


class ConfigError(RuntimeError):
    """The configuration cannot run safely; the message says which variable."""


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be 1 or 0, got {value!r}")


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}")
    return value


def _bps(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value > 10000:
        raise ConfigError(f"{name} is in basis points, at most 10000")
    return value


def _rate(env: Mapping[str, str], name: str, default: str) -> Decimal:
    raw = env.get(name) or default
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ConfigError(f"{name} must be a decimal such as 0.05, got {raw!r}") from None
    if not Decimal(0) <= value < Decimal(1):
        raise ConfigError(f"{name} must be in [0, 1)")
    return value


def _limit(env: Mapping[str, str], name: str, default: str) -> str:
    value = (env.get(name) or default).strip()
    try:
        parse_many(value)
    except ValueError:
        raise ConfigError(f'{name} must read like "10 per minute" or "10 per minute; 50 per hour"') from None
    return value


def _key_id(env: Mapping[str, str], name: str) -> str | None:
    value = (env.get(name) or "").strip()
    if value and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", value):
        raise ConfigError(f"{name} must be 1 to 64 letters, digits, dots, dashes or underscores")
    return value or None


def _bonus_tiers(env: Mapping[str, str], name: str, default: str) -> tuple[tuple[int, int], ...]:
    """``"50000:2000,100000:5000"``: a top-up of at least 50000 fen earns 2000 fen of bonus.
    Sorted by threshold; an empty value means no bonus at all."""
    raw = env.get(name, default).strip()
    tiers = []
    for part in filter(None, (piece.strip() for piece in raw.split(","))):
        threshold, _, bonus = part.partition(":")
        if not (threshold.isascii() and threshold.isdigit() and bonus.isascii() and bonus.isdigit()):
            raise ConfigError(f'{name} must read like "50000:2000,100000:5000" (fen:fen), got {raw!r}')
        tiers.append((int(threshold), int(bonus)))
    return tuple(sorted(tiers))


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """The variable's value, one of ``choices``; unset, the first."""
    value = env.get(name) or choices[0]
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}")
    return value


def _channels(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get("PAYMENT_CHANNELS") or ",".join(CHANNELS)
    names = tuple(dict.fromkeys(name.strip() for name in raw.split(",") if name.strip()))
    unknown = [name for name in names if name not in CHANNELS]
    if unknown or not names:
        raise ConfigError(f"PAYMENT_CHANNELS must list some of {', '.join(CHANNELS)}, got {raw!r}")
    return names


def _mail(env: Mapping[str, str], instance: Path, production: bool) -> dict[str, Any]:
    """E-mail (app/mail): the console backend writes .eml files into a folder, the only
    backend the embedded default needs; production sends by SMTP and refuses to start
    on the console backend (see `production_problems`)."""
    use_tls = _flag(env, "MAIL_USE_TLS", False)
    use_starttls = _flag(env, "MAIL_USE_STARTTLS", production and not use_tls)
    if use_tls and use_starttls:
        raise ConfigError("MAIL_USE_TLS (SMTPS) and MAIL_USE_STARTTLS exclude each other: set one")
    return {
        "MAIL_BACKEND": _choice(env, "MAIL_BACKEND", ("smtp", "console") if production else ("console", "smtp")),
        "MAIL_OUTBOX_DIR": env.get("MAIL_OUTBOX_DIR") or str(instance / "mail"),
        "MAIL_SERVER": env.get("MAIL_SERVER") or None,
        "MAIL_PORT": _int(env, "MAIL_PORT", 465 if use_tls else 587 if use_starttls else 25, minimum=1),
        "MAIL_USERNAME": env.get("MAIL_USERNAME") or None,
        "MAIL_PASSWORD": env.get("MAIL_PASSWORD") or None,
        "MAIL_USE_TLS": use_tls,
        "MAIL_USE_STARTTLS": use_starttls,
        "MAIL_FROM": env.get("MAIL_FROM") or ("" if production else "CourseCashier <no-reply@localhost>"),
        "MAIL_TIMEOUT_SECONDS": _int(env, "MAIL_TIMEOUT_SECONDS", 30, minimum=1),
        # Attempts before a message is failed (backoff 1, 5, 15, 60, then 240 minutes).
        "MAIL_MAX_ATTEMPTS": _int(env, "MAIL_MAX_ATTEMPTS", 6, minimum=1),
    }


def _seconds_list(env: Mapping[str, str], name: str, default: str) -> tuple[int, ...]:
    raw = env.get(name) or default
    try:
        values = tuple(int(part) for part in raw.split(","))
    except ValueError:
        raise ConfigError(f"{name} must be seconds separated by commas, got {raw!r}") from None
    if not values or any(value < 1 for value in values):
        raise ConfigError(f"{name} must list at least one interval, each at least 1 second")
    return values


def load_config(instance_path: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Build the Flask config mapping from the environment (and `.env` when present)."""
    if environ is None:
        load_dotenv(override=False)
        environ = os.environ
    env = dict(environ)
    app_env = env.get("APP_ENV", "development")
    if app_env not in {"development", "production", "testing"}:
        raise ConfigError("APP_ENV must be development, production or testing")
    production = app_env == "production"
    instance = Path(instance_path)
    queue_prefix = env.get("JOBS_QUEUE_PREFIX") or "cashier"

    config: dict[str, Any] = {
        "APP_ENV": app_env,
        "SECRET_KEY": env.get("SECRET_KEY") or "",
        "SQLALCHEMY_DATABASE_URI": env.get("DATABASE_URL")
        or f"sqlite:///{instance / 'cashier.db'}",
        "REDIS_URL": env.get("REDIS_URL") or None,
        "JOBS_QUEUE_PREFIX": queue_prefix,
        "PUBLIC_BASE_URL": (env.get("PUBLIC_BASE_URL") or DEFAULT_PUBLIC_BASE_URL).rstrip("/"),
        "PAYMENT_GATEWAY_EMULATOR": _flag(env, "PAYMENT_GATEWAY_EMULATOR", not production),
        "KEYS_DIR": env.get("KEYS_DIR") or str(instance / "keys"),
        "TAX_RATE": _rate(env, "TAX_RATE", "0"),
        "ORDER_TTL_MINUTES": _int(env, "ORDER_TTL_MINUTES", 15, minimum=1),
        "REFUND_WINDOW_DAYS": _int(env, "REFUND_WINDOW_DAYS", 7),
        "LARGE_REFUND_FEN": _int(env, "LARGE_REFUND_FEN", 50000),
        # Prepaid balance (app/wallet): the smallest and largest top-up, and bonus tiers.
        "WALLET_MIN_TOPUP_FEN": _int(env, "WALLET_MIN_TOPUP_FEN", 1000, minimum=1),
        "WALLET_MAX_TOPUP_FEN": _int(env, "WALLET_MAX_TOPUP_FEN", 5_000_000, minimum=1),
        "WALLET_BONUS_TIERS": _bonus_tiers(env, "WALLET_BONUS_TIERS", "50000:2000,100000:5000"),
        # "key_id:base64key[,older_id:base64key…]": the first seals, all open (rotation).
        "FIELD_ENCRYPTION_KEY": env.get("FIELD_ENCRYPTION_KEY") or "",
        # What each channel keeps of a payment, in basis points (60 = 0.6 %).
        "ALIPAY_FEE_BPS": _bps(env, "ALIPAY_FEE_BPS", 60),
        "WECHAT_FEE_BPS": _bps(env, "WECHAT_FEE_BPS", 60),
        # The emulator's own contract rates; unset (None), the two rates above.
        "GATEWAY_ALIPAY_FEE_BPS": (
            _bps(env, "GATEWAY_ALIPAY_FEE_BPS", 0) if env.get("GATEWAY_ALIPAY_FEE_BPS") else None
        ),
        "GATEWAY_WECHAT_FEE_BPS": (
            _bps(env, "GATEWAY_WECHAT_FEE_BPS", 0) if env.get("GATEWAY_WECHAT_FEE_BPS") else None
        ),
        # The smallest available balance finance pays out in a batch.
        "PAYOUT_MINIMUM_FEN": _int(env, "PAYOUT_MINIMUM_FEN", 10000, minimum=1),
        # The largest invoice file (PDF or OFD) finance may upload, in bytes.
        "INVOICE_MAX_FILE_BYTES": _int(env, "INVOICE_MAX_FILE_BYTES", 5 * 1024 * 1024, minimum=1024),
        "CHANNEL_TIMEOUT_SECONDS": float(env.get("CHANNEL_TIMEOUT_SECONDS") or 10),
        # Daily reconciliation: a record we completed this close before midnight may be
        # on the channel's next bill; yesterday's bills are fetched from this Beijing
        # hour on, and days this far back that have no finished run are tried again.
        "RECONCILE_MIDNIGHT_BUFFER_SECONDS": _int(env, "RECONCILE_MIDNIGHT_BUFFER_SECONDS", 900),
        "RECONCILE_AFTER_HOUR": _int(env, "RECONCILE_AFTER_HOUR", 10),
        "RECONCILE_LOOKBACK_DAYS": _int(env, "RECONCILE_LOOKBACK_DAYS", 3, minimum=1),
        # Alerts (app/alerts, README "Alerts"): a channel silent this long while live QRs
        # have waited as long (so shorter than ORDER_TTL_MINUTES); the success rate of an
        # hour's orders below these basis points once this many started a payment;
        # callbacks left unprocessed this long; e-mails to admins as alerts start and end.
        "ALERT_CALLBACK_SILENCE_MINUTES": _int(env, "ALERT_CALLBACK_SILENCE_MINUTES", 10, minimum=1),
        # One learner walking away from a QR code is no sign of a silent channel; this
        # many waiting at once, with no callback from the channel meanwhile, is.
        "ALERT_CALLBACK_SILENCE_MIN_PENDING": _int(env, "ALERT_CALLBACK_SILENCE_MIN_PENDING", 3, minimum=1),
        "ALERT_SUCCESS_RATE_BPS": _bps(env, "ALERT_SUCCESS_RATE_BPS", 8000),
        "ALERT_SUCCESS_RATE_MIN_ORDERS": _int(env, "ALERT_SUCCESS_RATE_MIN_ORDERS", 20, minimum=1),
        "ALERT_INBOX_AGE_MINUTES": _int(env, "ALERT_INBOX_AGE_MINUTES", 5, minimum=1),
        "ALERT_EMAILS_ENABLED": _flag(env, "ALERT_EMAILS_ENABLED", True),
        # Which channels are offered, each one's largest amount, and when a failing one
        # is taken out of the offer: `threshold` failures within `window` seconds rest it
        # for `cooldown` seconds.
        "PAYMENT_CHANNELS": _channels(env),
        "ALIPAY_MAX_AMOUNT_FEN": _int(env, "ALIPAY_MAX_AMOUNT_FEN", 100_000_000, minimum=1),
        "WECHAT_MAX_AMOUNT_FEN": _int(env, "WECHAT_MAX_AMOUNT_FEN", 100_000_000, minimum=1),
        "CHANNEL_FAILURE_THRESHOLD": _int(env, "CHANNEL_FAILURE_THRESHOLD", 3, minimum=1),
        "CHANNEL_FAILURE_WINDOW_SECONDS": _int(env, "CHANNEL_FAILURE_WINDOW_SECONDS", 120, minimum=1),
        "CHANNEL_COOLDOWN_SECONDS": _int(env, "CHANNEL_COOLDOWN_SECONDS", 300, minimum=1),
        # The embedded mode's periodic work (`make run` sets it); production runs
        # `flask jobs scheduler` instead.
        "BACKGROUND_TICKER": _flag(env, "BACKGROUND_TICKER", False),
        # The language of a visitor whose browser asks for neither Chinese nor English
        # (app/i18n); also that of jobs, which have no visitor.
        "DEFAULT_LOCALE": _choice(env, "DEFAULT_LOCALE", ("zh_CN", "en")),
        # How many reverse proxies in front of the site add X-Forwarded-For: the visitor's
        # address (rate limits, sign-in fingerprints) is read from that far back. 0 when
        # browsers reach the site directly, as in the embedded default.
        "TRUSTED_PROXIES": _int(env, "TRUSTED_PROXIES", 0),
        # Rate limits count in Redis, shared by every worker, when there is one; in the
        # embedded default (one process) memory does. Flask-Limiter reads these names.
        "RATELIMIT_ENABLED": _flag(env, "RATELIMIT_ENABLED", True),
        "RATELIMIT_STORAGE_URI": env.get("RATELIMIT_STORAGE_URI") or env.get("REDIS_URL") or "memory://",
        "RATELIMIT_KEY_PREFIX": f"{queue_prefix}-limits",
        **{name: _limit(env, name, default) for name, default in RATE_LIMIT_DEFAULTS.items()},
        # Receipts (app/receipts): the signing key, its id, and the name receipts carry.
        # Unset in the embedded default: a key generated into KEYS_DIR, named by its hash.
        "RECEIPT_PRIVATE_KEY_FILE": env.get("RECEIPT_PRIVATE_KEY_FILE") or None,
        "RECEIPT_KEY_ID": _key_id(env, "RECEIPT_KEY_ID"),
        "RECEIPT_PLATFORM_NAME": (env.get("RECEIPT_PLATFORM_NAME") or "CourseCashier").strip(),
        # Platform events (app/platform_events): the waits between tries of a delivery
        # (8 tries over about 22 hours by default) and each request's timeout.
        "PLATFORM_EVENTS_RETRY_SECONDS": _seconds_list(
            env, "PLATFORM_EVENTS_RETRY_SECONDS", "60,300,900,3600,10800,21600,43200"),
        "PLATFORM_EVENTS_TIMEOUT_SECONDS": _int(env, "PLATFORM_EVENTS_TIMEOUT_SECONDS", 5, minimum=1),
        # Monitoring (app/observability): log lines as JSON objects or text, and the
        # bearer token `GET /metrics` asks for (without one, see app/observability/views.py).
        "LOG_FORMAT": _choice(env, "LOG_FORMAT", ("json", "text") if production else ("text", "json")),
        "LOG_LEVEL": _choice(env, "LOG_LEVEL", ("INFO", "DEBUG", "WARNING", "ERROR")),
        "METRICS_TOKEN": (env.get("METRICS_TOKEN") or "").strip() or None,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": (env.get("PUBLIC_BASE_URL") or "").startswith("https://"),
        "WTF_CSRF_TIME_LIMIT": None,
        **_mail(env, instance, production),
    }
    if config["WALLET_MIN_TOPUP_FEN"] > config["WALLET_MAX_TOPUP_FEN"]:
        raise ConfigError("WALLET_MIN_TOPUP_FEN must not be above WALLET_MAX_TOPUP_FEN")
    for threshold_fen, bonus_fen in config["WALLET_BONUS_TIERS"]:
        # A bonus at or above what was paid is a typo, and one that gives money away.
        if bonus_fen >= threshold_fen:
            raise ConfigError(f"WALLET_BONUS_TIERS: the bonus {bonus_fen} must be below its top-up {threshold_fen}")
    if config["ALERT_CALLBACK_SILENCE_MINUTES"] >= config["ORDER_TTL_MINUTES"]:
        # No QR lives that long: the channel-silence alert could never fire.
        raise ConfigError("ALERT_CALLBACK_SILENCE_MINUTES must be shorter than ORDER_TTL_MINUTES")
    if config["RECONCILE_AFTER_HOUR"] > 23:
        raise ConfigError("RECONCILE_AFTER_HOUR is an hour of the day, 0 to 23")
    if config["RECONCILE_MIDNIGHT_BUFFER_SECONDS"] >= 12 * 3600:
        raise ConfigError("RECONCILE_MIDNIGHT_BUFFER_SECONDS must be under 12 hours")
    for name in ALIPAY_VARIABLES + WECHAT_VARIABLES:
        config[name] = (env.get(name) or "").strip() or None
    if config["FIELD_ENCRYPTION_KEY"]:
        try:
            parse_keyring(config["FIELD_ENCRYPTION_KEY"])
        except FieldKeyError as error:
            raise ConfigError(f"FIELD_ENCRYPTION_KEY: {error}") from None
    apiv3_key = config["WECHAT_APIV3_KEY"]
    if apiv3_key is not None and not (len(apiv3_key) == 32 and apiv3_key.isascii()):
        raise ConfigError("WECHAT_APIV3_KEY must be exactly 32 ASCII characters")
    if config["SQLALCHEMY_DATABASE_URI"].startswith("postgres://"):
        # Heroku-style URLs name a dialect SQLAlchemy 2 no longer accepts.
        config["SQLALCHEMY_DATABASE_URI"] = "postgresql://" + config[
            "SQLALCHEMY_DATABASE_URI"
        ][len("postgres://") :]
    return config


def finalize_config(config: dict[str, Any]) -> None:
    """Fill development defaults and refuse unsafe production settings.

    Runs after test overrides are merged, so a test can still choose every value.
    """
    production = config["APP_ENV"] == "production"
    if production:
        problems = production_problems(config)
        if problems:
            raise ConfigError("refusing to start in production: " + "; ".join(problems))
    elif not config.get("SECRET_KEY"):
        # A per-process key: sessions do not survive a restart, which is fine in dev.
        config["SECRET_KEY"] = secrets.token_urlsafe(32)
    if not config.get("PAYMENT_GATEWAY_EMULATOR"):
        missing = [
            name
            for channel in config["PAYMENT_CHANNELS"]
            for name in _NEEDED_WITHOUT_EMULATOR[channel]
            if not config.get(name)
        ]
        if missing:
            raise ConfigError(
                "the gateway emulator is off, so set " + ", ".join(missing)
            )


def secret_key_problem(secret: str | None) -> str | None:
    """Why a SECRET_KEY is not fit for production, or None. Never quotes the key."""
    if not secret:
        return "SECRET_KEY is not set"
    if len(secret) < MIN_SECRET_KEY_LENGTH:
        return f"SECRET_KEY is shorter than {MIN_SECRET_KEY_LENGTH} characters"
    if secret in KNOWN_SECRET_KEYS or _PLACEHOLDER_WORD.search(secret.lower()):
        return "SECRET_KEY is a development or example value"
    if len(set(secret)) < 8:
        return "SECRET_KEY is not random (too few different characters)"
    return None


def production_problems(config: Mapping[str, Any]) -> list[str]:
    """Everything that makes ``config`` unsafe to run in production, each naming the
    variable to set (all of them, so one failed start shows the whole list)."""
    problems = []
    secret_problem = secret_key_problem(config.get("SECRET_KEY"))
    if secret_problem:
        problems.append(secret_problem + ": set at least 32 random characters")
    if config.get("PAYMENT_GATEWAY_EMULATOR"):
        problems.append("PAYMENT_GATEWAY_EMULATOR must be 0 (the emulator takes payments that are not real)")
    if not str(config.get("PUBLIC_BASE_URL") or "").startswith("https://"):
        problems.append("PUBLIC_BASE_URL must be the site's https:// address (callbacks, secure cookies)")
    if config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        problems.append("DATABASE_URL must point at PostgreSQL")
    if not config.get("FIELD_ENCRYPTION_KEY"):
        problems.append("FIELD_ENCRYPTION_KEY is required (instructor bank accounts)")
    if config.get("RATELIMIT_ENABLED") and str(config.get("RATELIMIT_STORAGE_URI")).startswith("memory"):
        problems.append("REDIS_URL (or RATELIMIT_STORAGE_URI) is required: rate limits kept in memory "
                        "would count in each worker apart")
    if config.get("MAIL_BACKEND") != "smtp":
        problems.append("MAIL_BACKEND must be smtp (the console backend only writes files nobody receives)")
    elif not config.get("MAIL_SERVER") or not config.get("MAIL_FROM"):
        problems.append("MAIL_SERVER and MAIL_FROM are required to send e-mail")
    metrics_token = config.get("METRICS_TOKEN")
    if metrics_token and (len(metrics_token) < MIN_SECRET_KEY_LENGTH or len(set(metrics_token)) < 8
                          or _PLACEHOLDER_WORD.search(metrics_token.lower())):
        problems.append(f"METRICS_TOKEN is short or a placeholder: set at least {MIN_SECRET_KEY_LENGTH} random "
                        "characters, or leave it unset to keep /metrics off")
    for name in ("RECEIPT_PRIVATE_KEY_FILE", "RECEIPT_KEY_ID"):
        if not config.get(name):
            problems.append(f"{name} is required (receipts are signed with the platform's key)")
        elif name in KEY_FILE_VARIABLES and (file_problem := key_file_problem(name, str(config[name]))):
            problems.append(file_problem)
    for channel in config["PAYMENT_CHANNELS"]:
        for name in CHANNEL_VARIABLES[channel]:
            value = config.get(name)
            if not value:
                problems.append(f"{name} is required for the {channel} channel")
            elif name.endswith("_URL") and not str(value).startswith("https://"):
                problems.append(f"{name} must be an https:// address")
            elif name in KEY_FILE_VARIABLES:
                file_problem = key_file_problem(name, str(value))
                if file_problem:
                    problems.append(file_problem)
    return problems
