"""The reconciliation queue in the back office: listing and filters, a discrepancy's
two sides, resolving with a note (audited, off the dashboard), asking the channel, a
manual run, and refusals for roles and input that may not."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.admin.permissions import ACTIONS
from app.audit.models import AuditEntry
from app.checkout.models import Order
from app.extensions import db
from app.gateway import faults
from app.jobs.periodic import tick
from app.payments.resolution import query_attempt
from app.reconciliation.models import Discrepancy, ReconciliationRun
from app.reconciliation.runs import reconcile_day
from app.reconciliation.services import RECONCILING_STAFF, ReconciliationError, resolve_discrepancy
from tests.admin import conftest as back_office
from tests.admin.conftest import STAFF_EMAILS, audit_rows
from tests.conftest import Clock
from tests.reconciliation_helpers import DAY, D, attempt_row, edit_attempt, found, pay, reconcile, set_beijing, utc_of
from tests.test_concurrency import run_together

# The back office's fixtures: staff of each role, clients logged in as them, a learner.
staff = back_office.staff
client_as = back_office.client_as
learner = back_office.learner


@pytest.fixture
def shopper(app: Flask, learner: int, client_as: Callable[[str], FlaskClient]) -> FlaskClient:
    return client_as("learner")


@dataclass(frozen=True)
class Queue:
    status_id: int  # a dropped callback: paid at the channel, created here
    fee_id: int  # a fee we booked differently
    status_trade_no: str


@pytest.fixture
def queue(app: Flask, clock: Clock, shopper: FlaskClient) -> Queue:
    set_beijing(clock, D, 12)
    unsettled = pay(app, shopper, "alipay", drop_notify=True)
    wrong_fee = pay(app, shopper, "alipay", 20000)
    edit_attempt(app, wrong_fee, fee_fen=1)
    set_beijing(clock, D + DAY, 11)
    assert len(reconcile(app, "alipay", D).findings) == 2
    with app.app_context():
        ids = {row.kind: row.id for row in db.session.scalars(select(Discrepancy))}
    return Queue(ids["status_mismatch"], ids["fee_mismatch"], unsettled)


def discrepancy(app: Flask, discrepancy_id: int) -> Discrepancy:
    with app.app_context():
        row = db.session.get(Discrepancy, discrepancy_id)
        db.session.expunge(row)
        return row


def open_count(client: FlaskClient) -> str:
    page = client.get("/admin/").text
    return page.split('id="open-discrepancies">', 1)[1].split("<", 1)[0]


def test_the_queue_lists_open_discrepancies_first_and_filters_them(
    app: Flask, queue: Queue, client_as: Callable[[str], FlaskClient], staff: dict[str, int]
) -> None:
    with app.app_context():
        resolve_discrepancy(queue.status_id, staff["finance"], "accepted", "checked by hand", datetime(2026, 11, 21))
        db.session.commit()
    finance = client_as("finance")
    listing = finance.get("/admin/reconciliation/")
    assert listing.status_code == 200
    assert listing.text.index(f"discrepancy-{queue.fee_id}") < listing.text.index(f"discrepancy-{queue.status_id}")
    assert "Reconcile</button>" in listing.text  # finance may run a day
    only_fees = finance.get("/admin/reconciliation/?kind=fee_mismatch&channel=alipay&date=2026-11-20").text
    assert f"discrepancy-{queue.fee_id}" in only_fees and f"discrepancy-{queue.status_id}" not in only_fees
    assert "No discrepancies match" in finance.get("/admin/reconciliation/?date=2026-11-21").text
    assert "No discrepancies match" in finance.get("/admin/reconciliation/?channel=wechat").text
    resolved = finance.get("/admin/reconciliation/?status=resolved").text
    assert f"discrepancy-{queue.status_id}" in resolved and f"discrepancy-{queue.fee_id}" not in resolved
    nonsense = finance.get("/admin/reconciliation/?date=yesterday&kind=bogus")
    assert nonsense.status_code == 200
    assert "A day is written YYYY-MM-DD" in nonsense.text and "Unknown kind" in nonsense.text
    assert f"discrepancy-{queue.fee_id}" in nonsense.text


def test_the_detail_page_shows_both_sides_and_offers_what_the_role_may_do(
    app: Flask, queue: Queue, client_as: Callable[[str], FlaskClient]
) -> None:
    page = client_as("finance").get(f"/admin/reconciliation/{queue.status_id}/")
    assert page.status_code == 200
    assert 'id="ours-status">created<' in page.text and 'id="theirs-state">succeeded<' in page.text
    assert "Ask the channel</button>" in page.text and 'id="resolve"' in page.text
    fee_page = client_as("finance").get(f"/admin/reconciliation/{queue.fee_id}/").text
    assert 'id="ours-fee">¥0.01<' in fee_page and 'id="theirs-fee">¥1.20<' in fee_page
    assert "Ask the channel</button>" not in fee_page  # nothing the channel can settle
    support_page = client_as("support").get(f"/admin/reconciliation/{queue.status_id}/")
    assert support_page.status_code == 200
    assert "Ask the channel</button>" not in support_page.text and 'id="resolve"' not in support_page.text
    assert client_as("finance").get("/admin/reconciliation/999999/").status_code == 404


def test_resolving_with_a_note_is_audited_and_the_dashboard_count_drops(
    app: Flask, queue: Queue, client_as: Callable[[str], FlaskClient], staff: dict[str, int]
) -> None:
    finance = client_as("finance")
    dashboard = finance.get("/admin/").text
    assert open_count(finance) == "2" and "alert-danger" in dashboard
    response = finance.post(f"/admin/reconciliation/{queue.fee_id}/resolve",
                            data={"resolution": "corrected", "reason": "fee booked by an old rate; ledger fixed"})
    assert response.status_code == 302
    row = discrepancy(app, queue.fee_id)
    assert (row.status, row.resolution) == ("resolved", "corrected")
    assert row.note == "fee booked by an old rate; ledger fixed"
    assert row.resolved_by == staff["finance"] and row.resolved_at is not None
    assert audit_rows(app, "discrepancy") == [
        ("reconciliation.resolve", STAFF_EMAILS["finance"], "fee booked by an old rate; ledger fixed")]
    assert open_count(finance) == "1"
    detail = finance.get(f"/admin/reconciliation/{queue.fee_id}/").text
    assert "Our records were corrected" in detail and "reconciliation.resolve" in detail

    client_as("admin").post(f"/admin/reconciliation/{queue.status_id}/resolve",
                            data={"resolution": "accepted", "reason": "known incident"})
    assert open_count(finance) == "0" and "alert-danger" not in finance.get("/admin/").text


def test_roles_without_the_action_are_refused_and_nothing_changes(
    app: Flask, queue: Queue, client_as: Callable[[str], FlaskClient]
) -> None:
    form = {"resolution": "accepted", "reason": "looks fine"}
    for visitor in ("support", "learner", "instructor"):
        assert client_as(visitor).post(f"/admin/reconciliation/{queue.fee_id}/resolve", data=form).status_code == 403
        assert client_as(visitor).post(f"/admin/reconciliation/{queue.status_id}/ask-channel",
                                       data={"reason": "check"}).status_code == 403
        assert client_as(visitor).post("/admin/reconciliation/run", data={"bill_date": "2026-11-20"}).status_code == 403
    anonymous = client_as("anonymous").post(f"/admin/reconciliation/{queue.fee_id}/resolve", data=form)
    assert anonymous.status_code == 302 and "/login?next=" in anonymous.headers["Location"]
    assert client_as("learner").get("/admin/reconciliation/").status_code == 403
    assert discrepancy(app, queue.fee_id).status == "open"
    assert attempt_row(app, queue.status_trade_no).status == "created"
    assert audit_rows(app, "discrepancy") == []


def test_the_service_checks_the_role_again(app: Flask, queue: Queue, staff: dict[str, int]) -> None:
    assert ACTIONS[("reconciliation", "resolve")] == RECONCILING_STAFF
    assert ACTIONS[("reconciliation", "ask_channel")] == RECONCILING_STAFF
    with app.app_context():
        with pytest.raises(ReconciliationError) as refused:
            resolve_discrepancy(queue.fee_id, staff["support"], "accepted", "fine", datetime(2026, 11, 21))
        assert refused.value.code == "forbidden"


@pytest.mark.parametrize(("form", "message"), [
    ({"resolution": "corrected", "reason": ""}, "Please choose what was done"),
    ({"resolution": "corrected", "reason": "   "}, "Please choose what was done"),
    ({"resolution": "deleted", "reason": "gone"}, "Please choose what was done"),
    ({"reason": "no choice"}, "Please choose what was done"),
])
def test_a_resolution_without_a_note_or_a_known_choice_changes_nothing(
    app: Flask, queue: Queue, client_as: Callable[[str], FlaskClient], form: dict, message: str
) -> None:
    finance = client_as("finance")
    response = finance.post(f"/admin/reconciliation/{queue.fee_id}/resolve", data=form, follow_redirects=True)
    assert response.status_code == 200 and message in response.text
    assert discrepancy(app, queue.fee_id).status == "open"
    assert audit_rows(app, "discrepancy") == []


def test_an_unknown_or_already_resolved_discrepancy_gives_a_clear_error(
    app: Flask, queue: Queue, client_as: Callable[[str], FlaskClient]
) -> None:
    finance = client_as("finance")
    form = {"resolution": "accepted", "reason": "fine"}
    unknown = finance.post("/admin/reconciliation/999999/resolve", data=form, follow_redirects=True)
    assert unknown.status_code == 200 and "No such discrepancy." in unknown.text
    unknown_ask = finance.post("/admin/reconciliation/999999/ask-channel", data={"reason": "x"}, follow_redirects=True)
    assert "No such discrepancy." in unknown_ask.text
    finance.post(f"/admin/reconciliation/{queue.fee_id}/resolve", data=form)
    again = client_as("admin").post(f"/admin/reconciliation/{queue.fee_id}/resolve",
                                    data={"resolution": "corrected", "reason": "me too"}, follow_redirects=True)
    assert "already resolved" in again.text
    row = discrepancy(app, queue.fee_id)
    assert (row.resolution, row.note) == ("accepted", "fine")
    assert [action for action, _, _ in audit_rows(app, "discrepancy")] == ["reconciliation.resolve"]


def test_asking_the_channel_settles_a_payment_it_has_as_paid(
    app: Flask, queue: Queue, client_as: Callable[[str], FlaskClient]
) -> None:
    finance = client_as("finance")
    no_reason = finance.post(f"/admin/reconciliation/{queue.status_id}/ask-channel", data={"reason": ""},
                             follow_redirects=True)
    assert "Please give a reason" in no_reason.text
    assert attempt_row(app, queue.status_trade_no).status == "created"

    response = finance.post(f"/admin/reconciliation/{queue.status_id}/ask-channel",
                            data={"reason": "learner says they paid"}, follow_redirects=True)
    assert "Asked the channel; the outcome will appear here." in response.text
    assert 'id="check-outcome-text">paid<' in response.text  # the inline job has answered
    attempt = attempt_row(app, queue.status_trade_no)
    assert attempt.status == "succeeded"  # the inline job asked and settled it
    with app.app_context():
        assert db.session.get(Order, attempt.order_id).status == "paid"
    assert audit_rows(app, "discrepancy") == [
        ("reconciliation.ask_channel", STAFF_EMAILS["finance"], "learner says they paid")]
    assert discrepancy(app, queue.status_id).status == "open"  # staff still resolve it

    outcome = reconcile(app, "alipay", D)
    assert {finding.kind.value for finding in outcome.findings} == {"fee_mismatch"}
    assert discrepancy(app, queue.status_id).cleared_at is not None
    # Settled, nothing is left to ask.
    after = finance.post(f"/admin/reconciliation/{queue.status_id}/ask-channel", data={"reason": "again"},
                         follow_redirects=True)
    assert "resolve this one with a note" in after.text
    fee = finance.post(f"/admin/reconciliation/{queue.fee_id}/ask-channel", data={"reason": "try"},
                       follow_redirects=True)
    assert "resolve this one with a note" in fee.text


def test_asking_the_channel_settles_an_attempt_we_had_closed(
    app: Flask, clock: Clock, shopper: FlaskClient, client_as: Callable[[str], FlaskClient]
) -> None:
    """Closed here, paid at the channel (our close raced the payer): the answer wins."""
    set_beijing(clock, D, 12)
    trade_no = pay(app, shopper, "wechat", drop_notify=True)
    edit_attempt(app, trade_no, status="closed", closed_at=utc_of(D, 12, 1), next_query_at=None)
    set_beijing(clock, D + DAY, 11)
    outcome = reconcile(app, "wechat", D)
    assert found(outcome) == {("status_mismatch", "payment", trade_no)}
    with app.app_context():
        discrepancy_id = db.session.scalar(select(Discrepancy.id))
    client_as("admin").post(f"/admin/reconciliation/{discrepancy_id}/ask-channel", data={"reason": "closed but paid"})
    attempt = attempt_row(app, trade_no)
    assert (attempt.status, attempt.fee_fen) == ("succeeded", 60)
    assert found(reconcile(app, "wechat", D)) == set()


def test_finance_can_run_a_day_from_the_back_office(
    app: Flask, clock: Clock, shopper: FlaskClient, client_as: Callable[[str], FlaskClient]
) -> None:
    set_beijing(clock, D, 12)
    trade_no = pay(app, shopper, "alipay")
    edit_attempt(app, trade_no, fee_fen=0)
    set_beijing(clock, D + DAY, 11)
    finance = client_as("finance")
    response = finance.post("/admin/reconciliation/run", data={"bill_date": "2026-11-20", "channel": ""})
    assert response.status_code == 302 and "date=2026-11-20" in response.headers["Location"]
    page = finance.get(response.headers["Location"]).text
    assert "fee_mismatch" in page and trade_no in page
    with app.app_context():
        runs = {(run.channel, run.status) for run in db.session.scalars(select(ReconciliationRun))}
    assert runs == {("alipay", "finished"), ("wechat", "finished")}

    today = finance.post("/admin/reconciliation/run", data={"bill_date": "2026-11-21", "channel": "alipay"})
    assert today.status_code == 200 and "choose a day before today" in today.text
    garbage = finance.post("/admin/reconciliation/run", data={"bill_date": "soon", "channel": "alipay"})
    assert garbage.status_code == 200 and "Please give the day, as YYYY-MM-DD." in garbage.text
    unknown = finance.post("/admin/reconciliation/run", data={"bill_date": "2026-11-20", "channel": "paypal"})
    assert unknown.status_code == 200 and "Not a valid choice" in unknown.text
    with app.app_context():
        assert db.session.scalar(select(func.count(ReconciliationRun.id))) == 2


def test_racing_resolutions_and_runs_leave_one_decision_and_no_duplicates(
    app: Flask, queue: Queue, staff: dict[str, int]
) -> None:
    """Real threads, each with its own app context (session and connection): six staff
    resolve the same discrepancy while two runs of the same day race."""
    outcomes: list[str] = []

    def work(index: int) -> None:
        with app.app_context():
            if index >= 6:
                outcomes.append(f"run {len(reconcile_day('alipay', D).findings)}")
                return
            try:
                resolve_discrepancy(queue.fee_id, staff["finance" if index % 2 else "admin"], "accepted",
                                    f"checked {index}", datetime(2026, 11, 21))
                db.session.commit()
                outcomes.append("resolved")
            except ReconciliationError as error:
                db.session.rollback()
                outcomes.append(error.code)

    assert run_together(8, work) == []
    assert sorted(outcomes) == ["already_resolved"] * 5 + ["resolved"] + ["run 2"] * 2
    assert [action for action, _, _ in audit_rows(app, "discrepancy")] == ["reconciliation.resolve"]
    with app.app_context():
        assert db.session.scalar(select(func.count(Discrepancy.id))) == 2
        assert db.session.scalar(select(func.count(ReconciliationRun.id))) == 1
    assert discrepancy(app, queue.fee_id).status == "resolved"


# --- a resolved discrepancy found again ----------------------------------------------


def test_a_resolved_discrepancy_found_again_is_reopened_with_its_resolution_in_the_audit_log(
    app: Flask, clock: Clock, queue: Queue, client_as: Callable[[str], FlaskClient]
) -> None:
    finance = client_as("finance")
    finance.post(f"/admin/reconciliation/{queue.fee_id}/resolve",
                 data={"resolution": "corrected", "reason": "ledger fixed"})
    assert open_count(finance) == "1"

    clock.advance(minutes=10)
    outcome = reconcile(app, "alipay", D)  # the fee still differs: it was not corrected
    assert outcome.reopened == 1 and outcome.new == 0
    row = discrepancy(app, queue.fee_id)
    assert (row.status, row.resolution, row.note, row.resolved_by, row.resolved_at) == ("open", None, None, None, None)
    assert open_count(finance) == "2"
    assert audit_rows(app, "discrepancy") == [
        ("reconciliation.resolve", STAFF_EMAILS["finance"], "ledger fixed"),
        ("reconciliation.reopen", "system", "found again by the run of 2026-11-20 after it was resolved")]
    with app.app_context():
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "reconciliation.reopen"))
        before, after = json.loads(entry.before), json.loads(entry.after)
    assert (before["status"], before["resolution"], before["note"]) == ("resolved", "corrected", "ledger fixed")
    assert (after["status"], after["resolution"]) == ("open", None)
    detail = finance.get(f"/admin/reconciliation/{queue.fee_id}/").text
    assert 'id="resolve"' in detail and "reconciliation.reopen" in detail

    # Open again, it is resolved again like any other; one more run reopens it once more.
    finance.post(f"/admin/reconciliation/{queue.fee_id}/resolve", data={"resolution": "channel", "reason": "asked"})
    assert reconcile(app, "alipay", D).reopened == 1


def test_an_accepted_difference_seen_as_staff_saw_it_stays_resolved_until_it_changes(
    app: Flask, queue: Queue, client_as: Callable[[str], FlaskClient]
) -> None:
    finance = client_as("finance")
    finance.post(f"/admin/reconciliation/{queue.fee_id}/resolve",
                 data={"resolution": "accepted", "reason": "old contract rate, explained"})
    assert reconcile(app, "alipay", D).reopened == 0
    assert discrepancy(app, queue.fee_id).status == "resolved"
    assert open_count(finance) == "1"

    with app.app_context():
        fee_trade_no = db.session.get(Discrepancy, queue.fee_id).out_trade_no
    edit_attempt(app, fee_trade_no, fee_fen=2)  # not what staff accepted
    assert reconcile(app, "alipay", D).reopened == 1
    row = discrepancy(app, queue.fee_id)
    assert (row.status, row.ours_fee_fen) == ("open", 2)


def test_a_resolved_discrepancy_no_longer_found_stays_resolved(
    app: Flask, queue: Queue, staff: dict[str, int]
) -> None:
    with app.app_context():
        resolve_discrepancy(queue.status_id, staff["finance"], "corrected", "settled by hand", datetime(2026, 11, 21))
        db.session.commit()
        query_attempt(attempt_row(app, queue.status_trade_no).id)  # the payment is settled meanwhile
    outcome = reconcile(app, "alipay", D)
    assert (outcome.reopened, outcome.cleared) == (0, 1)
    row = discrepancy(app, queue.status_id)
    assert (row.status, row.resolution) == ("resolved", "corrected") and row.cleared_at is not None


def test_a_run_older_than_the_resolution_does_not_reopen_it(app: Flask, queue: Queue, staff: dict[str, int]) -> None:
    with app.app_context():
        resolve_discrepancy(queue.fee_id, staff["admin"], "corrected", "fixed", datetime(2026, 11, 22))
        db.session.commit()
    assert reconcile(app, "alipay", D).reopened == 0  # the clock is still on the 21st
    assert discrepancy(app, queue.fee_id).status == "resolved"


# --- input that cannot be right --------------------------------------------------------


@pytest.mark.parametrize("discrepancy_id", ["99999999999999999999", "9223372036854775808", "2147483648"])
def test_an_id_beyond_any_key_is_not_found(
    app: Flask, queue: Queue, client_as: Callable[[str], FlaskClient], discrepancy_id: str
) -> None:
    finance = client_as("finance")
    base = f"/admin/reconciliation/{discrepancy_id}"
    assert finance.get(base + "/").status_code == 404
    assert finance.post(base + "/resolve", data={"resolution": "accepted", "reason": "x"}).status_code == 404
    assert finance.post(base + "/ask-channel", data={"reason": "x"}).status_code == 404
    largest = "/admin/reconciliation/2147483647"  # the largest INTEGER key
    assert finance.get(largest + "/").status_code == 404
    unknown = finance.post(largest + "/resolve", data={"resolution": "accepted", "reason": "x"}, follow_redirects=True)
    assert unknown.status_code == 200 and "No such discrepancy." in unknown.text


@pytest.mark.parametrize(("page", "shows_rows", "previous"), [
    ("99999999999999999999", False, "page=999999"),
    ("1000001", False, "page=999999"),
    ("-3", True, None),
    ("0", True, None),
    ("two", True, None),
])
def test_a_page_number_out_of_range_is_clamped(
    app: Flask, queue: Queue, client_as: Callable[[str], FlaskClient], page: str, shows_rows: bool,
    previous: str | None
) -> None:
    listing = client_as("finance").get(f"/admin/reconciliation/?page={page}")
    assert listing.status_code == 200
    assert (f"discrepancy-{queue.fee_id}" in listing.text) is shows_rows
    assert ("Previous" in listing.text) is (previous is not None)
    if previous:
        assert previous in listing.text


# --- runs that did not finish, on the dashboard ---------------------------------------


def stalled_count(client: FlaskClient) -> str:
    page = client.get("/admin/").text
    return page.split('id="stalled-runs">', 1)[1].split("<", 1)[0]


def test_the_dashboard_counts_the_days_whose_run_failed_or_is_stuck(
    app: Flask, clock: Clock, client_as: Callable[[str], FlaskClient]
) -> None:
    set_beijing(clock, D, 11)  # the lookback: the 17th, 18th and 19th
    finance = client_as("finance")
    assert stalled_count(finance) == "0"
    hour = timedelta(hours=1)
    with app.app_context():
        for channel, day, status, claimed in [
            ("alipay", D - DAY, "failed", clock.current - 5 * hour),  # counted
            ("wechat", D - DAY, "pending", clock.current - 2 * hour),  # claimed long ago, counted
            ("wechat", D - 2 * DAY, "pending", clock.current - hour / 2),  # just claimed
            ("alipay", D - 2 * DAY, "finished", clock.current - 5 * hour),
            ("alipay", D - 10 * DAY, "failed", clock.current - 240 * hour),  # before the lookback
            ("alipay", D, "failed", clock.current),  # today: no bill yet, not due
        ]:
            db.session.add(ReconciliationRun(channel=channel, bill_date=day, status=status, created_at=claimed))
        db.session.commit()
    dashboard = finance.get("/admin/").text
    assert stalled_count(finance) == "2"
    card = dashboard.split('id="runs-card"', 1)[1].split("</div></div></div>", 1)[0]
    assert "alert-danger" in card and 'href="/admin/reconciliation/#runs"' in card
    runs = finance.get("/admin/reconciliation/").text
    assert 'id="run-alipay-2026-11-19" class="table-danger"' in runs

    app.config["PAYMENT_CHANNELS"] = ("alipay",)  # a channel switched off is not due
    assert stalled_count(finance) == "1"


def test_a_failed_round_shows_on_the_dashboard_until_a_retry_finishes(
    app: Flask, clock: Clock, client_as: Callable[[str], FlaskClient]
) -> None:
    app.config.update(RECONCILE_LOOKBACK_DAYS=1)
    set_beijing(clock, D, 11)
    with app.app_context():
        faults.set_fault("api_error", "wechat")
        db.session.commit()
        assert tick()["bills_due"] == 2
    finance = client_as("finance")
    assert stalled_count(finance) == "1"
    with app.app_context():
        faults.clear_faults()
        db.session.commit()
    clock.advance(minutes=31)
    with app.app_context():
        assert tick()["bills_due"] == 1
    assert stalled_count(finance) == "0"
