"""The configuration contract (DESIGN.md §5) and `/healthz`."""
from __future__ import annotations

import base64
from decimal import Decimal

import pytest

from app.config import ConfigError, finalize_config, load_config

PRODUCTION = {
    "APP_ENV": "production",
    "SECRET_KEY": "s" * 40,
    "DATABASE_URL": "postgresql://db/cashier",
    "PAYMENT_GATEWAY_EMULATOR": "0",
    "ALIPAY_APP_ID": "2021000000000009",
    "ALIPAY_SELLER_ID": "2088000000000009",
    "ALIPAY_APP_PRIVATE_KEY_FILE": "/keys/app.pem",
    "ALIPAY_PUBLIC_KEY_FILE": "/keys/alipay.pem",
    "ALIPAY_GATEWAY_URL": "https://openapi.alipay.com/gateway.do",
    "WECHAT_MCH_ID": "1900000109",
    "WECHAT_APP_ID": "wxd678efh567hg6787",
    "WECHAT_MCH_PRIVATE_KEY_FILE": "/keys/apiclient_key.pem",
    "WECHAT_MCH_CERT_SERIAL": "444F4864EA9B34415B6A3A9F4E8B2D5C9E000001",
    "WECHAT_APIV3_KEY": "k" * 32,
    "WECHAT_PLATFORM_PUBLIC_KEY_FILE": "/keys/pub_key.pem",
    "WECHAT_PLATFORM_PUBLIC_KEY_ID": "PUB_KEY_ID_0119000001092026010100000000000001",
    "WECHAT_API_BASE_URL": "https://api.mch.weixin.qq.com",
    "FIELD_ENCRYPTION_KEY": "k2026:" + base64.b64encode(bytes(range(32))).decode(),
}


def test_embedded_defaults(tmp_path):
    config = load_config(str(tmp_path), environ={})
    finalize_config(config)
    assert config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'cashier.db'}"
    assert config["PAYMENT_GATEWAY_EMULATOR"] is True
    assert config["REDIS_URL"] is None
    assert config["PUBLIC_BASE_URL"] == "http://127.0.0.1:5000"
    assert (config["TAX_RATE"], config["ORDER_TTL_MINUTES"]) == (Decimal(0), 15)
    assert (config["REFUND_WINDOW_DAYS"], config["LARGE_REFUND_FEN"]) == (7, 50000)
    assert len(config["SECRET_KEY"]) >= 32


def test_a_complete_production_config_is_accepted(tmp_path):
    config = load_config(str(tmp_path), environ=PRODUCTION)
    finalize_config(config)
    assert config["PAYMENT_GATEWAY_EMULATOR"] is False


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"PAYMENT_GATEWAY_EMULATOR": "1"}, "PAYMENT_GATEWAY_EMULATOR"),
        ({"DATABASE_URL": ""}, "DATABASE_URL"),
        ({"ALIPAY_APP_PRIVATE_KEY_FILE": ""}, "ALIPAY_APP_PRIVATE_KEY_FILE"),
        ({"WECHAT_APIV3_KEY": ""}, "WECHAT_APIV3_KEY"),
        ({"FIELD_ENCRYPTION_KEY": ""}, "FIELD_ENCRYPTION_KEY"),
    ],
)
def test_production_refuses_to_start_unsafely(tmp_path, change, complaint):
    config = load_config(str(tmp_path), environ={**PRODUCTION, **change})
    with pytest.raises(ConfigError, match=complaint):
        finalize_config(config)


@pytest.mark.parametrize(
    "environ",
    [{"TAX_RATE": "abc"}, {"TAX_RATE": "1.5"}, {"ORDER_TTL_MINUTES": "0"},
     {"ORDER_TTL_MINUTES": "ten"}, {"PAYMENT_GATEWAY_EMULATOR": "maybe"},
     {"PAYMENT_CHANNELS": "alipay,paypal"}, {"ALIPAY_FEE_BPS": "10001"},
     {"FIELD_ENCRYPTION_KEY": "k2026:c2hvcnQ="}, {"PAYMENT_CHANNELS": " , "},
     {"WECHAT_APIV3_KEY": "k" * 31}, {"WECHAT_APIV3_KEY": "密" * 32}],
)
def test_malformed_values_fail_fast_with_the_variable_named(tmp_path, environ):
    with pytest.raises(ConfigError, match=next(iter(environ)).split("_")[0]):
        load_config(str(tmp_path), environ=environ)


def test_healthz_reports_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json["checks"]["database"] == "ok"


def test_healthz_reports_an_unreachable_redis(app, client):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json["checks"]["redis"].startswith("error")


def test_healthz_reports_the_real_redis(app, client):
    app.config["REDIS_URL"] = "redis://127.0.0.1:6379/0"
    assert client.get("/healthz").json["checks"]["redis"] == "ok"
