"""Production refuses to start unsafely, and says exactly what to fix (app/config.py)."""
from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import pytest

from app import create_app
from app.config import ConfigError, finalize_config, load_config, secret_key_problem

KEYS = Path(__file__).parent / "keys"
# A made-up key of the right shape; no deployment uses it.
RANDOM_SECRET = "HmlZ-q75r7OxwizHfn-RWWuVFoa4TVT31LeN_W2s8hVgxBI5"
KEY_FILE_SOURCES = {
    "ALIPAY_APP_PRIVATE_KEY_FILE": "alipay_app_private.pem",
    "ALIPAY_PUBLIC_KEY_FILE": "alipay_platform_public.pem",
    "WECHAT_MCH_PRIVATE_KEY_FILE": "wechat_mch_private.pem",
    "WECHAT_PLATFORM_PUBLIC_KEY_FILE": "wechat_platform_public.pem",
    "RECEIPT_PRIVATE_KEY_FILE": "receipt_private.pem",
}


@pytest.fixture
def production(tmp_path: Path) -> dict[str, str]:
    """A complete production environment whose key files exist."""
    folder = tmp_path / "keys"
    folder.mkdir()
    files = {}
    for variable, source in KEY_FILE_SOURCES.items():
        shutil.copy(KEYS / source, folder / source)
        files[variable] = str(folder / source)
    return {
        "APP_ENV": "production",
        "SECRET_KEY": RANDOM_SECRET,
        "DATABASE_URL": "postgresql://db/cashier",
        "REDIS_URL": "redis://redis:6379/0",
        "PUBLIC_BASE_URL": "https://pay.example.com",
        "PAYMENT_GATEWAY_EMULATOR": "0",
        "ALIPAY_APP_ID": "2021000000000009",
        "ALIPAY_SELLER_ID": "2088000000000009",
        "ALIPAY_GATEWAY_URL": "https://openapi.alipay.com/gateway.do",
        "WECHAT_MCH_ID": "1900000109",
        "WECHAT_APP_ID": "wxd678efh567hg6787",
        "WECHAT_MCH_CERT_SERIAL": "444F4864EA9B34415B6A3A9F4E8B2D5C9E000001",
        "WECHAT_APIV3_KEY": "Qm3x9TfW2kLp7Vn4Rz8Yc1Hs6Jd5Ga0E",
        "WECHAT_PLATFORM_PUBLIC_KEY_ID": "PUB_KEY_ID_0119000001092026010100000000000001",
        "WECHAT_API_BASE_URL": "https://api.mch.weixin.qq.com",
        "FIELD_ENCRYPTION_KEY": "k2026:" + base64.b64encode(bytes(range(32))).decode(),
        "MAIL_SERVER": "smtp.example.com",
        "MAIL_FROM": "CourseCashier <no-reply@pay.example.com>",
        "RECEIPT_KEY_ID": "cc-receipts-2026",
        **files,
    }


def refusal(tmp_path: Path, environ: dict[str, str]) -> str:
    config = load_config(str(tmp_path), environ=environ)
    with pytest.raises(ConfigError) as raised:
        finalize_config(config)
    return str(raised.value)


def test_a_complete_production_config_is_accepted(tmp_path, production):
    config = load_config(str(tmp_path), environ=production)
    finalize_config(config)
    assert config["PAYMENT_GATEWAY_EMULATOR"] is False
    assert config["SESSION_COOKIE_SECURE"] is True
    assert config["RATELIMIT_STORAGE_URI"] == "redis://redis:6379/0"  # shared by every worker
    assert (config["LOG_FORMAT"], config["METRICS_TOKEN"]) == ("json", None)  # /metrics off until a token is set


def test_an_unknown_log_format_is_refused_as_it_is_read(tmp_path, production):
    with pytest.raises(ConfigError, match="LOG_FORMAT must be one of json, text"):
        load_config(str(tmp_path), environ={**production, "LOG_FORMAT": "xml"})


def test_a_random_metrics_token_is_accepted(tmp_path, production):
    token = "Zq3vN8xW1kTf6HsY0bLp4RcJ9mGd2Ae7"
    config = load_config(str(tmp_path), environ={**production, "METRICS_TOKEN": token})
    finalize_config(config)
    assert config["METRICS_TOKEN"] == token


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY is not set"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY is shorter than 32 characters"),
        ({"SECRET_KEY": "test-secret-key-that-is-long-enough-000"}, "SECRET_KEY is a development or example value"),
        ({"SECRET_KEY": "please-change-me-before-going-live-0000"}, "SECRET_KEY is a development or example value"),
        ({"SECRET_KEY": "dev_" + RANDOM_SECRET}, "SECRET_KEY is a development or example value"),
        ({"SECRET_KEY": "s" * 40}, "SECRET_KEY is not random"),
        ({"PAYMENT_GATEWAY_EMULATOR": "1"}, "PAYMENT_GATEWAY_EMULATOR must be 0"),
        ({"PUBLIC_BASE_URL": "http://pay.example.com"}, "PUBLIC_BASE_URL must be the site's https:// address"),
        ({"DATABASE_URL": ""}, "DATABASE_URL must point at PostgreSQL"),
        ({"FIELD_ENCRYPTION_KEY": ""}, "FIELD_ENCRYPTION_KEY is required"),
        ({"REDIS_URL": ""}, r"REDIS_URL \(or RATELIMIT_STORAGE_URI\) is required: rate limits kept in memory"),
        ({"ALIPAY_APP_PRIVATE_KEY_FILE": ""}, "ALIPAY_APP_PRIVATE_KEY_FILE is required for the alipay channel"),
        ({"WECHAT_APIV3_KEY": ""}, "WECHAT_APIV3_KEY is required for the wechat channel"),
        ({"WECHAT_API_BASE_URL": "http://api.mch.weixin.qq.com"}, "WECHAT_API_BASE_URL must be an https:// address"),
        ({"ALIPAY_PUBLIC_KEY_FILE": "/nowhere/alipay.pem"},
         r"ALIPAY_PUBLIC_KEY_FILE names /nowhere/alipay.pem, which cannot be read \(No such file"),
        ({"RECEIPT_PRIVATE_KEY_FILE": ""}, r"RECEIPT_PRIVATE_KEY_FILE is required \(receipts are signed"),
        ({"RECEIPT_KEY_ID": ""}, r"RECEIPT_KEY_ID is required \(receipts are signed"),
        ({"RECEIPT_PRIVATE_KEY_FILE": "/nowhere/receipt.pem"},
         r"RECEIPT_PRIVATE_KEY_FILE names /nowhere/receipt.pem, which cannot be read"),
        ({"METRICS_TOKEN": "prometheus"}, "METRICS_TOKEN is short or a placeholder"),
        ({"METRICS_TOKEN": "changeme-" + RANDOM_SECRET}, "METRICS_TOKEN is short or a placeholder"),
    ],
)
def test_production_refuses_to_start_unsafely(tmp_path, production, change, complaint):
    message = refusal(tmp_path, {**production, **change})
    assert message.startswith("refusing to start in production: ")
    assert re.search(complaint, message), message


def test_a_key_file_of_the_wrong_kind_is_named(tmp_path, production):
    """Our private key where the channel's public key belongs, and a file that is no key."""
    not_a_key = tmp_path / "notes.txt"
    not_a_key.write_text("hello")
    message = refusal(tmp_path, {**production, "ALIPAY_PUBLIC_KEY_FILE": production["ALIPAY_APP_PRIVATE_KEY_FILE"],
                                 "WECHAT_MCH_PRIVATE_KEY_FILE": str(not_a_key)})
    assert "ALIPAY_PUBLIC_KEY_FILE names" in message and "not an RSA public key" in message
    assert f"WECHAT_MCH_PRIVATE_KEY_FILE names {not_a_key}, which is not an RSA private key" in message
    assert "BEGIN" not in message and "hello" not in message  # names the file, never quotes it


def test_every_problem_is_named_in_one_message(tmp_path, production):
    environ = {**production, "SECRET_KEY": "changeme", "PAYMENT_GATEWAY_EMULATOR": "1",
               "WECHAT_MCH_PRIVATE_KEY_FILE": "", "ALIPAY_APP_ID": ""}
    message = refusal(tmp_path, environ)
    for part in ("SECRET_KEY is shorter than 32", "PAYMENT_GATEWAY_EMULATOR must be 0",
                 "WECHAT_MCH_PRIVATE_KEY_FILE is required", "ALIPAY_APP_ID is required"):
        assert part in message
    assert "changeme" not in message  # the message never repeats a secret


def test_only_the_enabled_channels_need_keys(tmp_path, production):
    environ = {name: value for name, value in production.items() if not name.startswith("WECHAT_")}
    config = load_config(str(tmp_path), environ={**environ, "PAYMENT_CHANNELS": "alipay"})
    finalize_config(config)
    assert config["PAYMENT_CHANNELS"] == ("alipay",)


def test_the_app_factory_refuses_too(production, monkeypatch):
    """`create_app()` reads the environment: what an operator's gunicorn start meets."""
    for name, value in {**production, "PAYMENT_GATEWAY_EMULATOR": "1"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match="PAYMENT_GATEWAY_EMULATOR must be 0"):
        create_app()


@pytest.mark.parametrize("secret", [RANDOM_SECRET, "0123456789abcdef" * 2, "f3" * 8 + "9a1c7e5b2d4f6a8c"])
def test_random_keys_pass_the_secret_check(secret):
    assert secret_key_problem(secret) is None
