"""The configuration contract (DESIGN.md §5) and `/healthz`; production's refusals are in
test_production_config.py."""
from __future__ import annotations

from decimal import Decimal

import pytest

from app.config import ConfigError, finalize_config, load_config


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
