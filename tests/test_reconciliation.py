"""Daily reconciliation end to end: real payments and refunds through the emulator, the
channels' real bills through the adapters, discrepancies of every kind injected on
purpose; the command and the periodic round. The back office is in
test_reconciliation_admin.py."""
from __future__ import annotations

import uuid
from datetime import date
from typing import Callable

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue, SimpleWorker
from rq.job import JOB_ID_PATTERN
from rq.serializers import JSONSerializer
from sqlalchemy import func, select

from app.extensions import db
from app.gateway import faults
from app.jobs.periodic import tick
from app.jobs.queues import JOB_SPECS, queue_name
from app.payments.resolution import query_attempt
from app.reconciliation import services
from app.reconciliation.models import Discrepancy, ReconciliationRun
from app.reconciliation.runs import channel_day, parse_channel_day
from tests.admin import conftest as back_office
from tests.conftest import Clock
from tests.reconciliation_helpers import (CHANNELS, DAY, D, attempt_row, edit_attempt, found, inject_every_kind, pay,
                                          reconcile, set_beijing)

REDIS_URL = "redis://127.0.0.1:6379/0"
# The back office's fixtures: staff of each role, clients logged in as them, a learner.
staff = back_office.staff
client_as = back_office.client_as
learner = back_office.learner


@pytest.fixture
def shopper(app: Flask, learner: int, client_as: Callable[[str], FlaskClient]) -> FlaskClient:
    return client_as("learner")


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_day_with_every_kind_of_discrepancy_finds_exactly_those(
    app: Flask, clock: Clock, shopper: FlaskClient, staff: dict[str, int], channel: str
) -> None:
    day = inject_every_kind(app, clock, shopper, channel, staff["support"])

    outcome = reconcile(app, channel, D)
    assert found(outcome) == day.expected
    assert outcome.lines_checked == 9  # the 8 payments paid at the channel on D, and the refund
    by_kind = {finding.kind.value: finding for finding in outcome.findings}
    assert (by_kind["amount_mismatch"].ours_amount_fen, by_kind["amount_mismatch"].theirs_amount_fen) == (12001, 12000)
    assert (by_kind["status_mismatch"].ours_status, by_kind["status_mismatch"].theirs_state) == ("created", "succeeded")
    assert (by_kind["fee_mismatch"].ours_fee_fen, by_kind["fee_mismatch"].theirs_fee_fen) == (119, 120)
    assert by_kind["missing_ours"].theirs_amount_fen == 8800

    # The trades across midnight are not reported by the neighbouring days either.
    assert found(reconcile(app, channel, D - DAY)) == set()
    assert found(reconcile(app, channel, D + DAY)) == set()
    # The other channel's bill has nothing of this day, and nothing of ours is missing there.
    other = "wechat" if channel == "alipay" else "alipay"
    assert found(reconcile(app, other, D)) == set()

    with app.app_context():
        rows = list(db.session.scalars(select(Discrepancy).where(Discrepancy.channel == channel)))
        assert {(row.kind, row.subject, row.reference) for row in rows} == day.expected
        assert {row.status for row in rows} == {"open"} and all(row.bill_date == D for row in rows)
        run = db.session.scalar(select(ReconciliationRun).where(
            ReconciliationRun.channel == channel, ReconciliationRun.bill_date == D))
        assert (run.status, run.lines_checked, run.discrepancies_found) == ("finished", 9, 5)


def test_a_channel_charging_another_rate_shows_a_fee_mismatch_on_each_payment(
    app: Flask, clock: Clock, shopper: FlaskClient
) -> None:
    set_beijing(clock, D, 12)
    trades = {pay(app, shopper, "wechat", price) for price in (10000, 25000)}
    set_beijing(clock, D + DAY, 11)
    app.config["GATEWAY_WECHAT_FEE_BPS"] = 100  # the emulated channel's contract: 1 %, ours says 0.6 %
    outcome = reconcile(app, "wechat", D)
    assert found(outcome) == {("fee_mismatch", "payment", trade) for trade in trades}
    assert {(f.ours_fee_fen, f.theirs_fee_fen) for f in outcome.findings} == {(60, 100), (150, 250)}


def test_a_bill_naming_more_trades_than_one_query_takes_is_read_in_parts(
    app: Flask, clock: Clock, shopper: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "KEYS_PER_QUERY", 2)
    set_beijing(clock, D, 12)
    trades = [pay(app, shopper, "alipay", price) for price in (1000, 2000, 3000, 4000, 5000)]
    edit_attempt(app, trades[-1], fee_fen=0)
    set_beijing(clock, D + DAY, 11)
    outcome = reconcile(app, "alipay", D)
    assert outcome.lines_checked == 5 and found(outcome) == {("fee_mismatch", "payment", trades[-1])}


def test_running_a_day_again_adds_nothing_and_marks_what_it_no_longer_finds(
    app: Flask, clock: Clock, shopper: FlaskClient, staff: dict[str, int]
) -> None:
    day = inject_every_kind(app, clock, shopper, "alipay", staff["support"])
    first = reconcile(app, "alipay", D)
    assert first.new == 5
    second = reconcile(app, "alipay", D)
    assert found(second) == day.expected and second.new == 0 and second.cleared == 0
    with app.app_context():
        assert db.session.scalar(select(func.count(Discrepancy.id))) == 5
        assert db.session.scalar(select(func.count(ReconciliationRun.id))) == 1

    # The dropped callback's payment is settled meanwhile (the active query): the next
    # run no longer finds that one, and marks it rather than deleting it.
    with app.app_context():
        assert query_attempt(attempt_row(app, day.status_trade_no).id).outcome == "paid"
    third = reconcile(app, "alipay", D)
    assert found(third) == day.expected - {("status_mismatch", "payment", day.status_trade_no)}
    assert (third.new, third.cleared) == (0, 1)
    with app.app_context():
        cleared = db.session.scalar(select(Discrepancy).where(Discrepancy.kind == "status_mismatch"))
        assert cleared.status == "open" and cleared.cleared_at is not None
        assert db.session.scalar(select(func.count(Discrepancy.id))) == 5


# --- the command -------------------------------------------------------------------------


def test_the_command_prints_each_channels_lines_and_discrepancies(
    app: Flask, clock: Clock, shopper: FlaskClient, runner
) -> None:
    set_beijing(clock, D, 12)
    trade_no = pay(app, shopper, "alipay", 10000)
    edit_attempt(app, trade_no, amount_fen=10001)
    pay(app, shopper, "wechat")
    set_beijing(clock, D + DAY, 11)
    result = runner.invoke(args=["reconcile", "--date", "2026-11-20"])
    assert result.exit_code == 0, result.output
    # The report is on stdout; the log records the run on stderr, which Click mixes into output.
    lines = result.stdout.splitlines()
    assert lines[0] == "alipay 2026-11-20: 1 line(s) checked, 1 discrepancy(ies) (1 new)"
    assert lines[1].split()[:3] == ["amount_mismatch", "payment", f"{trade_no}:"]
    assert "ours ¥100.01 succeeded" in lines[1] and "theirs ¥100.00 succeeded" in lines[1]
    assert lines[2] == "wechat 2026-11-20: 1 line(s) checked, 0 discrepancy(ies)"

    # The date defaults to yesterday in Beijing; --channel picks one.
    again = runner.invoke(args=["reconcile", "--channel", "wechat"])
    assert again.exit_code == 0 and again.stdout.splitlines() == [
        "wechat 2026-11-20: 1 line(s) checked, 0 discrepancy(ies)"]


def test_the_command_fails_clearly_when_a_bill_is_not_ready(app: Flask, clock: Clock, runner) -> None:
    set_beijing(clock, D, 12)
    result = runner.invoke(args=["reconcile", "--date", "2026-11-20"])
    assert result.exit_code == 1
    assert "alipay: the bill is not ready yet, try again later" in result.output
    assert "wechat: the bill is not ready yet, try again later" in result.output
    with app.app_context():
        runs = list(db.session.scalars(select(ReconciliationRun)))
        assert {(run.status, run.error.startswith("the bill is not ready")) for run in runs} == {("failed", True)}


def test_the_command_fails_clearly_when_a_channel_fails(app: Flask, clock: Clock, runner) -> None:
    set_beijing(clock, D + DAY, 11)
    with app.app_context():
        faults.set_fault("api_error", "wechat")
        db.session.commit()
    result = runner.invoke(args=["reconcile", "--date", "2026-11-20"])
    assert result.exit_code == 1
    assert "alipay 2026-11-20: 0 line(s) checked, 0 discrepancy(ies)" in result.output
    assert "Error: wechat: the channel failed" in result.output
    bad = runner.invoke(args=["reconcile", "--date", "20.11.2026"])
    assert bad.exit_code == 2 and "Invalid value for '--date'" in bad.output
    assert runner.invoke(args=["reconcile", "--channel", "paypal"]).exit_code == 2


# --- the daily round ---------------------------------------------------------------------


def runs_by_day(app: Flask) -> dict[tuple[str, date], str]:
    with app.app_context():
        return {(run.channel, run.bill_date): run.status for run in db.session.scalars(select(ReconciliationRun))}


def test_the_round_reconciles_yesterday_once_and_not_before_the_hour(app: Flask, clock: Clock) -> None:
    set_beijing(clock, D, 9, 59)
    with app.app_context():
        assert tick()["bills_due"] == 4  # the two days before yesterday, both channels
    assert set(runs_by_day(app)) == {(c, D - n * DAY) for c in CHANNELS for n in (2, 3)}

    set_beijing(clock, D, 10)
    with app.app_context():
        assert tick()["bills_due"] == 2
        assert tick()["bills_due"] == 0  # finished: once a day
    assert runs_by_day(app) == {(c, D - n * DAY): "finished" for c in CHANNELS for n in (1, 2, 3)}

    set_beijing(clock, D + DAY, 9)
    with app.app_context():
        assert tick()["bills_due"] == 0
    set_beijing(clock, D + DAY, 10, 30)
    with app.app_context():
        assert tick()["bills_due"] == 2
    assert runs_by_day(app)[("alipay", D)] == "finished"


def test_the_hour_comes_from_the_configuration(app: Flask, clock: Clock) -> None:
    app.config.update(RECONCILE_AFTER_HOUR=14, RECONCILE_LOOKBACK_DAYS=1)
    set_beijing(clock, D, 13, 59)
    with app.app_context():
        assert tick()["bills_due"] == 0
    set_beijing(clock, D, 14)
    with app.app_context():
        assert tick()["bills_due"] == 2
    assert set(runs_by_day(app)) == {("alipay", D - DAY), ("wechat", D - DAY)}


def test_a_day_that_failed_is_tried_again_later_not_every_round(app: Flask, clock: Clock) -> None:
    app.config.update(RECONCILE_LOOKBACK_DAYS=1, PAYMENT_CHANNELS=("alipay",))
    set_beijing(clock, D, 11)
    with app.app_context():
        faults.set_fault("api_error", "alipay")
        db.session.commit()
        assert tick()["bills_due"] == 1
        assert tick()["bills_due"] == 0
    assert runs_by_day(app) == {("alipay", D - DAY): "failed"}
    with app.app_context():
        faults.clear_faults()
        db.session.commit()
    clock.advance(minutes=29)
    with app.app_context():
        assert tick()["bills_due"] == 0
    clock.advance(minutes=2)
    with app.app_context():
        assert tick()["bills_due"] == 1
    assert runs_by_day(app) == {("alipay", D - DAY): "finished"}


def test_the_job_is_one_per_channel_and_day() -> None:
    spec = JOB_SPECS["reconcile_bill"]
    assert spec.queue == "default"
    assert spec.job_id(channel_day("alipay", D)) == "reconcile_bill-alipay-2026-11-20"
    assert JOB_ID_PATTERN.fullmatch(spec.job_id(channel_day("wechat", D)))  # RQ refuses other ids
    assert parse_channel_day("wechat-2026-11-20") == ("wechat", D)
    for bad in ("paypal-2026-11-20", "alipay-20.11.2026", "alipay"):
        with pytest.raises(ValueError):
            parse_channel_day(bad)


def test_with_redis_the_round_queues_the_days_and_a_worker_reconciles_them(app: Flask, clock: Clock) -> None:
    # Redis is a real part here (`make test` starts it): no Redis is a failure, not a skip.
    connection = redis.Redis.from_url(REDIS_URL)
    connection.ping()
    app.config.update(REDIS_URL=REDIS_URL, JOBS_QUEUE_PREFIX=f"recontest-{uuid.uuid4().hex[:8]}",
                      RECONCILE_LOOKBACK_DAYS=1)
    try:
        set_beijing(clock, D, 11)
        with app.app_context():
            assert tick()["bills_due"] == 2
            queue = Queue(queue_name("default"), connection=connection, serializer=JSONSerializer)
            assert sorted(queue.get_job_ids()) == [
                f"{app.config['JOBS_QUEUE_PREFIX']}-reconcile_bill-{name}-2026-11-19" for name in CHANNELS]
            SimpleWorker([queue], connection=connection, serializer=JSONSerializer).work(burst=True)
        assert runs_by_day(app) == {("alipay", D - DAY): "finished", ("wechat", D - DAY): "finished"}
    finally:
        for key in connection.scan_iter(f"*{app.config['JOBS_QUEUE_PREFIX']}*"):
            connection.delete(key)
        connection.close()
