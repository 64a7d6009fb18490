"""The reconciliation run and discrepancy state machines (app/payments/states.py) and
the services that move them by compare-and-set."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import CheckConstraint, select

from app.extensions import db
from app.gateway import faults
from app.payments.states import MACHINES, IllegalTransition, next_status, sources
from app.payments.transitions import compare_and_set
from app.reconciliation.models import Discrepancy, ReconciliationRun
from app.reconciliation.services import record_failure
from tests.conftest import Clock
from tests.reconciliation_helpers import DAY, D, reconcile, set_beijing

RUN_TABLE = [
    ("pending", "finish", "finished"),
    ("failed", "finish", "finished"),
    ("finished", "finish", "finished"),  # a rerun of a finished day
    ("pending", "fail", "failed"),
    ("failed", "fail", "failed"),
    ("finished", "fail", "finished"),  # a failed rerun keeps the day's findings
]
DISCREPANCY_TABLE = [
    ("open", "resolve", "resolved"),
    ("resolved", "reopen", "open"),  # a run found it again
]


@pytest.mark.parametrize(("machine", "table"), [("run", RUN_TABLE), ("discrepancy", DISCREPANCY_TABLE)])
def test_the_table_allows_exactly_these_moves(machine: str, table: list[tuple[str, str, str]]) -> None:
    assert sorted((status, event, target) for (status, event), target in MACHINES[machine].items()) == sorted(table)
    for status, event, target in table:
        assert next_status(machine, status, event) == target


@pytest.mark.parametrize(("machine", "status", "event"), [
    ("run", "finished", "claim"),
    ("run", "pending", "reopen"),
    ("discrepancy", "open", "reopen"),
    ("discrepancy", "resolved", "resolve"),
])
def test_a_move_the_table_lacks_raises(machine: str, status: str, event: str) -> None:
    with pytest.raises(IllegalTransition):
        next_status(machine, status, event)


@pytest.mark.parametrize(("machine", "model"), [("run", ReconciliationRun), ("discrepancy", Discrepancy)])
def test_every_status_of_the_table_is_one_the_database_allows(machine: str, model: type) -> None:
    check = next(constraint for constraint in model.__table__.constraints
                 if isinstance(constraint, CheckConstraint) and str(constraint.name).endswith("status"))
    allowed = set(re.findall(r"'(\w+)'", str(check.sqltext)))
    assert {status for pair in MACHINES[machine] for status in (pair[0], MACHINES[machine][pair])} == allowed
    assert sources(machine, "finish" if machine == "run" else "resolve") <= allowed


def run_row(app: Flask, channel: str = "alipay") -> ReconciliationRun:
    with app.app_context():
        run = db.session.scalar(select(ReconciliationRun).where(ReconciliationRun.channel == channel,
                                                                ReconciliationRun.bill_date == D))
        db.session.expunge(run)
        return run


def test_a_failed_try_fails_a_day_and_a_later_one_finishes_it(app: Flask, clock: Clock) -> None:
    set_beijing(clock, D + DAY, 11)
    with app.app_context():
        faults.set_fault("api_error", "alipay")
        db.session.commit()
    assert reconcile(app, "alipay", D).error is not None
    assert reconcile(app, "alipay", D).error is not None
    failed = run_row(app)
    assert (failed.status, failed.tries, failed.finished_at) == ("failed", 2, None)
    assert failed.next_try_at == clock.current + timedelta(minutes=30)
    with app.app_context():
        faults.clear_faults()
        db.session.commit()
    clock.advance(minutes=5)
    assert reconcile(app, "alipay", D).error is None
    finished = run_row(app)
    assert (finished.status, finished.tries, finished.error, finished.next_try_at) == ("finished", 3, None, None)
    assert finished.finished_at == clock.current and finished.started_at == clock.current - timedelta(minutes=5)


def test_a_failed_rerun_of_a_finished_day_keeps_it_finished(app: Flask, clock: Clock) -> None:
    set_beijing(clock, D + DAY, 11)
    assert reconcile(app, "alipay", D).error is None
    with app.app_context():
        faults.set_fault("api_error", "alipay")
        db.session.commit()
    clock.advance(hours=1)
    assert reconcile(app, "alipay", D).error is not None
    run = run_row(app)
    assert (run.status, run.tries, run.next_try_at) == ("finished", 2, None)
    assert run.error is not None and run.finished_at == clock.current - timedelta(hours=1)


def test_the_service_moves_a_run_only_from_the_status_it_read(app: Flask, clock: Clock) -> None:
    """Compare-and-set: a move from a status the row no longer has changes nothing."""
    set_beijing(clock, D + DAY, 11)
    with app.app_context():
        record_failure("alipay", D, "the bill is not ready yet", clock.current, timedelta(minutes=30))
        db.session.commit()
        run_id = db.session.scalar(select(ReconciliationRun.id))
        assert not compare_and_set(ReconciliationRun, run_id, "run", "pending", "finish")
        assert compare_and_set(ReconciliationRun, run_id, "run", "failed", "finish", finished_at=clock.current)
        db.session.commit()
        assert db.session.get(ReconciliationRun, run_id).status == "finished"


def test_a_discrepancy_moves_open_resolved_open_by_compare_and_set(app: Flask) -> None:
    with app.app_context():
        row = Discrepancy(channel="alipay", bill_date=D, kind="missing_ours", subject="payment", reference="T1",
                          out_trade_no="T1", status="open")
        db.session.add(row)
        db.session.commit()
        moment = datetime(2026, 11, 21)
        assert compare_and_set(Discrepancy, row.id, "discrepancy", "open", "resolve", resolution="accepted",
                               resolved_at=moment)
        assert not compare_and_set(Discrepancy, row.id, "discrepancy", "open", "resolve", resolution="corrected")
        with pytest.raises(IllegalTransition):
            compare_and_set(Discrepancy, row.id, "discrepancy", "resolved", "resolve")
        assert compare_and_set(Discrepancy, row.id, "discrepancy", "resolved", "reopen", resolution=None,
                               resolved_at=None)
        db.session.commit()
        assert (row.status, row.resolution) == ("open", None)
