"""Customer refunds: the learner's request, staff decisions (maker-checker for large
ones), the channel refund, and what success does to the order, ledger and access."""
from __future__ import annotations

import random
import threading

import pytest
from sqlalchemy import func, select

from app.accounts.services import create_user
from app.audit.models import AuditEntry
from app.catalog.models import Enrollment
from app.checkout.models import Order
from app.extensions import db
from app.jobs.periodic import tick
from app.ledger.models import JournalEntry, Posting
from app.ledger.services import unbalanced_entry_ids
from app.payments import refund_workflow
from app.payments.models import Refund, RefundLine
from app.payments.refund_workflow import RefundError
from app.payments.refunds import fail_refund
from app.payments.transitions import compare_and_set
from tests.helpers import attempt_of, checkout, login, make_course, make_learner, pay_at_emulator


def order_of(order_no: str) -> Order:
    order = db.session.scalar(select(Order).where(Order.order_no == order_no))
    assert order is not None
    return order


def staff(role: str, email: str) -> int:
    user_id = create_user(email, "staff-password", role.title(), role=role)
    db.session.commit()
    return user_id


def paid_order(app, client, prices: list[int], channel: str = "alipay", coupon: str | None = None) -> str:
    with app.app_context():
        course_ids = [make_course(price, slug=f"r{index}-{price}") for index, price in enumerate(prices)]
        make_learner()
    login(client)
    order_no = checkout(client, course_ids, coupon=coupon, channel=channel)
    with app.app_context():
        qr = attempt_of(order_no).qr_code
    pay_at_emulator(app, qr)
    with app.app_context():
        assert order_of(order_no).status == "paid"
    return order_no


def order_account_sums(order_id: int) -> dict[str, int]:
    rows = db.session.execute(
        select(Posting.account, func.sum(Posting.amount_fen))
        .join(JournalEntry, JournalEntry.id == Posting.entry_id)
        .where(JournalEntry.order_id == order_id)
        .group_by(Posting.account)
    ).all()
    return {account: total for account, total in rows}


def approve_and_run(refund_id: int, staff_id: int) -> None:
    assert refund_workflow.approve_refund(refund_id, staff_id, "policy ok") == "approved"
    db.session.commit()
    from app.jobs import enqueue

    enqueue("execute_refund", refund_id)


def refused_refund(order_no: str, channel_error: str = "ACQ.SELLER_BALANCE_NOT_ENOUGH") -> tuple[int, int]:
    """The learner's refund of the whole order, approved by support, as the channel's
    refusal leaves it: started, then failed; committed. Returns (refund id, support's id)."""
    order = order_of(order_no)
    support = staff("support", "support@example.com")
    refund_id = refund_workflow.request_refund(order.id, order.user_id, None, "broken")
    refund_workflow.approve_refund(refund_id, support, "ok")
    assert compare_and_set(Refund, refund_id, "refund", "approved", "start")
    assert fail_refund(refund_id, channel_error)
    db.session.commit()
    return refund_id, support


@pytest.mark.parametrize("channel", ["alipay", "wechat"])
def test_a_full_refund_returns_the_money_revokes_access_and_zeroes_the_ledger(app, client, channel):
    order_no = paid_order(app, client, [10000, 4990], channel=channel, coupon=None)
    page = client.get(f"/orders/{order_no}/refund")
    assert page.status_code == 200 and "Lessons opened" in page.text
    response = client.post(f"/orders/{order_no}/refund", data={"reason": "Not what I expected"})
    assert response.status_code == 302
    with app.app_context():
        support = staff("support", "support@example.com")
        refund = db.session.scalar(select(Refund))
        assert (refund.status, refund.amount_fen, len(refund.lines)) == ("requested", 14990, 2)
        refund_id = refund.id
        approve_and_run(refund_id, support)  # the inline job ends this session: re-read
        refund = db.session.get(Refund, refund_id)
        assert refund.status == "succeeded"
        order = order_of(order_no)
        assert order.status == "refunded"
        assert all(enrollment.revoked_at is not None for enrollment in db.session.scalars(select(Enrollment)))
        assert set(order_account_sums(order.id).values()) == {0}
        assert unbalanced_entry_ids() == []
    orders_page = client.get("/orders").text
    assert "refunded" in orders_page and "succeeded" in orders_page


def test_line_refunds_return_each_line_as_the_payment_allocated_it(app, client):
    with app.app_context():
        from tests.helpers import make_coupon

        make_coupon("FIXED", kind="fixed", amount_off_fen=1001)
    order_no = paid_order(app, client, [3333, 6667, 10000], coupon="FIXED")
    with app.app_context():
        order = order_of(order_no)
        support = staff("support", "support@example.com")
        lines = [(line.id, line.course_id, line.amount_fen) for line in order.lines]
        assert sum(amount for _, _, amount in lines) == order.total_fen
        order_id, user_id = order.id, order.user_id
        first = refund_workflow.request_refund(order_id, user_id, [lines[0][0]], "one course")
        db.session.commit()
        approve_and_run(first, support)
        order = order_of(order_no)
        assert order.status == "partially_refunded"
        assert db.session.get(Refund, first).amount_fen == lines[0][2]
        enrollments = {e.course_id: e for e in db.session.scalars(select(Enrollment))}
        assert enrollments[lines[0][1]].revoked_at is not None
        assert enrollments[lines[1][1]].revoked_at is None

        rest = refund_workflow.request_refund(order_id, user_id, None, "the rest")
        db.session.commit()
        assert db.session.get(Refund, rest).amount_fen == lines[1][2] + lines[2][2]
        approve_and_run(rest, support)
        order = order_of(order_no)
        assert order.status == "refunded"
        assert set(order_account_sums(order.id).values()) == {0}


def test_the_refund_window_closes(app, client, clock):
    order_no = paid_order(app, client, [10000])
    clock.advance(days=app.config["REFUND_WINDOW_DAYS"], seconds=1)
    page = client.get(f"/orders/{order_no}/refund")
    assert "refund window of this order has closed" in page.text
    client.post(f"/orders/{order_no}/refund", data={"reason": "late"})
    with app.app_context():
        assert db.session.scalar(select(func.count(Refund.id))) == 0
        with pytest.raises(RefundError):
            order = order_of(order_no)
            refund_workflow.request_refund(order.id, order.user_id, None, "late")


def test_someone_elses_order_cannot_be_refunded(app, client):
    order_no = paid_order(app, client, [10000])
    with app.app_context():
        make_learner("bob@example.com")
    other = app.test_client()
    login(other, "bob@example.com")
    assert other.get(f"/orders/{order_no}/refund").status_code == 404
    assert other.post(f"/orders/{order_no}/refund", data={"reason": "mine"}).status_code == 404


def test_a_large_refund_cannot_be_completed_by_one_person(app, client):
    app.config["LARGE_REFUND_FEN"] = 5000
    order_no = paid_order(app, client, [10000])
    with app.app_context():
        order = order_of(order_no)
        support = staff("support", "support@example.com")
        boss = staff("admin", "boss@example.com")
        finance = staff("finance", "finance@example.com")
        refund_id = refund_workflow.request_refund(order.id, order.user_id, None, "too hard")
        db.session.commit()
        assert refund_workflow.approve_refund(refund_id, boss, "looks fine") == "awaiting_finance"
        db.session.commit()
        with pytest.raises(RefundError) as same:
            refund_workflow.approve_refund(refund_id, boss, "me again")
        assert same.value.code == "same_approver"
        db.session.rollback()
        with pytest.raises(RefundError) as role:
            refund_workflow.approve_refund(refund_id, support, "support cannot")
        assert role.value.code == "forbidden"
        db.session.rollback()
        assert db.session.get(Refund, refund_id).status == "awaiting_finance"
        assert refund_workflow.approve_refund(refund_id, finance, "checked the order") == "approved"
        db.session.commit()
        decisions = db.session.execute(
            select(AuditEntry.action, AuditEntry.actor_email, AuditEntry.reason).order_by(AuditEntry.id)
        ).all()
        assert [tuple(row) for row in decisions] == [
            ("refund.approve_first", "boss@example.com", "looks fine"),
            ("refund.approve", "finance@example.com", "checked the order"),
        ]


def test_a_rejected_refund_is_audited_and_moves_no_money(app, client):
    order_no = paid_order(app, client, [10000])
    with app.app_context():
        order = order_of(order_no)
        support = staff("support", "support@example.com")
        refund_id = refund_workflow.request_refund(order.id, order.user_id, None, "changed my mind")
        db.session.commit()
        with pytest.raises(RefundError):
            refund_workflow.reject_refund(refund_id, support, "   ")  # a reason is required
        refund_workflow.reject_refund(refund_id, support, "course fully watched")
        db.session.commit()
        assert db.session.get(Refund, refund_id).status == "rejected"
        entry = db.session.scalar(select(AuditEntry))
        assert (entry.action, entry.actor_id, entry.reason) == ("refund.reject", support, "course fully watched")
        assert '"status": "requested"' in entry.before and '"status": "rejected"' in entry.after
        assert order_of(order_no).status == "paid"
        assert db.session.scalar(select(func.count(JournalEntry.id))) == 1


def test_the_audit_log_refuses_to_be_rewritten(app, client):
    order_no = paid_order(app, client, [10000])
    with app.app_context():
        order = order_of(order_no)
        support = staff("support", "support@example.com")
        refund_id = refund_workflow.request_refund(order.id, order.user_id, None, "why not")
        refund_workflow.reject_refund(refund_id, support, "no")
        db.session.commit()
        for statement in ("UPDATE audit_log SET reason = 'yes'", "DELETE FROM audit_log"):
            with pytest.raises(Exception, match="append-only"):
                with db.engine.begin() as connection:
                    connection.exec_driver_sql(statement)
        assert db.session.scalar(select(AuditEntry.reason)) == "no"


def test_twenty_concurrent_approvals_never_refund_more_than_was_paid(app, client):
    order_no = paid_order(app, client, [10000, 20000, 30000, 40000])
    with app.app_context():
        order = order_of(order_no)
        line_ids = [line.id for line in order.lines]
        approvers = [staff("support", f"support{index}@example.com") for index in range(20)]
        choose = random.Random(7)
        requests = [
            refund_workflow.request_refund(
                order.id, order.user_id, choose.sample(line_ids, choose.randint(1, 2)), f"request {index}"
            )
            for index in range(20)
        ]
        db.session.commit()
        total_fen = order.total_fen

    barrier = threading.Barrier(len(requests))
    outcomes: list[str] = []

    def approve(refund_id: int, staff_id: int) -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=10)
                refund_workflow.approve_refund(refund_id, staff_id, "concurrent")
                db.session.commit()
                outcomes.append("approved")
            except RefundError as error:
                db.session.rollback()
                outcomes.append(error.code)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=approve, args=pair) for pair in zip(requests, approvers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(outcomes) == 20 and "approved" in outcomes
    assert set(outcomes) <= {"approved", "line_refunded", "over_refund"}
    with app.app_context():
        approved = list(db.session.scalars(select(Refund).where(Refund.status == "approved")))
        assert sum(refund.amount_fen for refund in approved) <= total_fen
        approved_lines = [
            line_id for line_id in db.session.scalars(
                select(RefundLine.order_line_id).where(RefundLine.refund_id.in_([r.id for r in approved]))
            )
        ]
        assert len(approved_lines) == len(set(approved_lines))  # no line refunded twice
        tick()  # the periodic round sends them
        succeeded = db.session.scalars(select(Refund).where(Refund.status == "succeeded")).all()
        assert sum(refund.amount_fen for refund in succeeded) <= total_fen
        assert len(succeeded) == len(approved)
        assert unbalanced_entry_ids() == []


def test_a_refund_the_channel_could_not_take_is_sent_again_under_the_same_number(app, client):
    from app.gateway import faults

    order_no = paid_order(app, client, [10000])
    with app.app_context():
        order = order_of(order_no)
        support = staff("support", "support@example.com")
        refund_id = refund_workflow.request_refund(order.id, order.user_id, None, "broken")
        db.session.commit()
        out_trade_no = attempt_of(order_no).out_trade_no
        # The channel is down (503): the outcome is unknown, so the refund is checked later.
        faults.set_fault("api_error", channel="alipay", out_trade_no=out_trade_no)
        db.session.commit()
        approve_and_run(refund_id, support)
        refund = db.session.get(Refund, refund_id)
        assert refund.status == "processing"  # a 503 is unknown, not a refusal: it will be checked
        faults.clear_faults()
        db.session.commit()
        number = refund.refund_no
    app.config["CLOCK"].advance(minutes=3)
    with app.app_context():
        tick()
        refund = db.session.get(Refund, refund_id)
        assert (refund.status, refund.refund_no) == ("succeeded", number)
        with pytest.raises(RefundError):
            refund_workflow.retry_refund(refund_id, support, "only failed ones")


def test_a_retry_by_staff_sends_a_failed_refund_again(app, client):
    order_no = paid_order(app, client, [10000])
    with app.app_context():
        refund_id, support = refused_refund(order_no, "ACQ.SELLER_BALANCE_NOT_ENOUGH: 卖家余额不足")
        refund_workflow.retry_refund(refund_id, support, "the channel is back")
        db.session.commit()
        from app.jobs import enqueue

        enqueue("execute_refund", refund_id)
        assert db.session.get(Refund, refund_id).status == "succeeded"
        assert order_of(order_no).status == "refunded"
        actions = list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
        assert actions[:2] == ["refund.approve", "refund.retry"]


def test_splitting_a_large_refund_still_needs_the_second_approver(app, client):
    app.config["LARGE_REFUND_FEN"] = 15000
    order_no = paid_order(app, client, [10000, 10000, 10000])
    with app.app_context():
        order = order_of(order_no)
        support = staff("support", "support@example.com")
        order_id, user_id = order.id, order.user_id
        line_ids = [line.id for line in order.lines]
        first, second = (
            refund_workflow.request_refund(order_id, user_id, [line_id], "one at a time")
            for line_id in line_ids[:2]
        )
        db.session.commit()
        assert refund_workflow.approve_refund(first, support, "small") == "approved"
        db.session.commit()
        # ¥100 + ¥100 on one order is above the ¥150 limit, however it is split.
        assert refund_workflow.approve_refund(second, support, "also small") == "awaiting_finance"


def test_nobody_approves_a_refund_they_asked_for(app, client):
    order_no = paid_order(app, client, [10000])
    with app.app_context():
        order = order_of(order_no)
        from app.accounts.models import User

        learner = db.session.get(User, order.user_id)
        learner.role = "support"  # a staff member who bought a course
        db.session.commit()
        refund_id = refund_workflow.request_refund(order.id, order.user_id, None, "mine")
        db.session.commit()
        with pytest.raises(RefundError) as refused:
            refund_workflow.approve_refund(refund_id, order.user_id, "looks right to me")
        assert refused.value.code == "own_request"


def test_a_failed_refund_is_not_sent_again_without_a_staff_decision(app, client):
    from app.jobs import enqueue

    order_no = paid_order(app, client, [10000])
    with app.app_context():
        refund_id, _ = refused_refund(order_no)
        enqueue("execute_refund", refund_id)  # a stray job: a requeue, a late callback
        refund = db.session.get(Refund, refund_id)
        assert (refund.status, refund.tries) == ("failed", 0)
        tick()
        assert db.session.get(Refund, refund_id).status == "failed"


def test_a_course_taken_by_another_request_meanwhile_is_named_as_the_problem(app, client):
    order_no = paid_order(app, client, [10000, 4990])
    with app.app_context():
        first_line = order_of(order_no).lines[0].id
    form = {"lines": [str(first_line)], "reason": "Not for me"}
    assert client.post(f"/orders/{order_no}/refund", data=form).status_code == 302
    with app.app_context():
        approve_and_run(db.session.scalar(select(Refund.id)), staff("support", "support@example.com"))
    stale = client.post(f"/orders/{order_no}/refund", data=form, follow_redirects=True)  # a second tab
    assert "Choose courses of this order that can be refunded." in stale.text
    assert "Please give a reason" not in stale.text
    with app.app_context():
        assert db.session.scalar(select(func.count(Refund.id))) == 1
