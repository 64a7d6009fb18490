"""Access periods and renewal: a time-limited purchase, the renewal order and its
refusals, extension from the current end, refund of a renewal, the reminder."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from app.accounts.models import User
from app.accounts.services import create_user
from app.catalog.models import Course, Enrollment
from app.checkout.models import Order, OrderLine
from app.extensions import db
from app.jobs import enqueue
from app.jobs.periodic import remind_ending_access
from app.payments import refund_workflow
from app.payments.models import OrphanPayment, Refund
from app.renewal import ordering
from app.renewal import services as renewal
from app.renewal.models import AccessExtension
from tests.helpers import attempt_of, checkout, login, make_course, make_learner, pay_at_emulator
from tests.test_refunds import approve_and_run, staff

DAYS = 30
BEFORE_RENEWAL = "c2d7e5a91b38"


def limited_course(app, price_fen: int = 10000, renewal_fen: int | None = 6000) -> int:
    with app.app_context():
        course_id = make_course(price_fen, slug="limited")
        course = db.session.get(Course, course_id)
        course.access_days, course.renewal_price_fen = DAYS, renewal_fen
        db.session.commit()
        make_learner()
    return course_id


def pay(app, order_no: str) -> None:
    with app.app_context():
        qr = attempt_of(order_no).qr_code
    pay_at_emulator(app, qr)


def enrollment() -> Enrollment:
    return db.session.scalar(select(Enrollment).execution_options(populate_existing=True))


def renew(client, slug: str = "limited", channel: str = "alipay"):
    return client.post(f"/courses/{slug}/renew", data={"channel": channel})


def renewal_order_no(response) -> str:
    match = re.search(r"/orders/([A-Z0-9]+)/pay", response.headers["Location"])
    assert match, response.headers["Location"]
    return match.group(1)


def bought(app, client, clock) -> str:
    course_id = limited_course(app)
    login(client)
    order_no = checkout(client, [course_id])
    pay(app, order_no)
    return order_no


def test_a_first_purchase_grants_access_for_the_course_days(app, client, clock):
    bought(app, client, clock)
    with app.app_context():
        assert enrollment().expires_at == clock.current + timedelta(days=DAYS)
    assert client.get("/courses/limited/lessons/1").status_code == 200


def test_a_lifetime_course_keeps_lifetime_access_and_cannot_be_renewed(app, client, clock):
    with app.app_context():
        course_id = make_course(10000, slug="forever")
        make_learner()
    login(client)
    pay(app, checkout(client, [course_id]))
    with app.app_context():
        assert enrollment().expires_at is None
    refused = renew(client, "forever")
    assert refused.status_code == 302 and refused.headers["Location"].endswith("/courses/forever")
    with app.app_context():
        assert db.session.scalar(select(func.count(Order.id))) == 1


def test_renewing_an_active_course_extends_from_the_current_end(app, client, clock):
    bought(app, client, clock)
    with app.app_context():
        old_end = enrollment().expires_at
    clock.advance(days=DAYS - 6)
    order_no = renewal_order_no(renew(client))
    pay(app, order_no)
    with app.app_context():
        assert enrollment().expires_at == old_end + timedelta(days=DAYS)
        line = db.session.scalar(select(OrderLine).join(Order).where(Order.order_no == order_no))
        assert (line.kind, line.access_days, line.list_price_fen) == ("renewal", DAYS, 6000)
        assert db.session.scalar(select(func.count(OrphanPayment.id))) == 0


def test_an_expired_course_shows_renew_refuses_lessons_and_renewing_restarts_from_payment(app, client, clock):
    bought(app, client, clock)
    clock.advance(days=DAYS + 10)
    my_courses = client.get("/my/courses").text
    assert "data-renew" in my_courses and "data-study" not in my_courses
    assert 'data-renew href="/courses/limited/renew"' in client.get("/").text
    refused = client.get("/courses/limited/lessons/1")
    assert refused.status_code == 302 and refused.headers["Location"].endswith("/courses/limited/renew")
    pay(app, renewal_order_no(renew(client)))
    with app.app_context():
        assert enrollment().expires_at == clock.current + timedelta(days=DAYS)
    assert client.get("/courses/limited/lessons/1").status_code == 200


def test_renewal_of_a_course_not_owned_is_refused(app, client, clock):
    limited_course(app)
    login(client)
    refused = renew(client)
    assert refused.status_code == 302 and refused.headers["Location"].endswith("/courses/limited")
    assert "You do not own this course." in client.get("/courses/limited").text
    with app.app_context():
        assert db.session.scalar(select(func.count(Order.id))) == 0
    assert client.get("/courses/nope/renew").status_code == 404


def test_a_duplicate_callback_extends_once(app, client, clock):
    bought(app, client, clock)
    with app.app_context():
        old_end = enrollment().expires_at
    order_no = renewal_order_no(renew(client))
    pay(app, order_no)
    with app.app_context():
        order_id = db.session.scalar(select(Order.id).where(Order.order_no == order_no))
        from app.payments.settlement import settle_payment
        attempt = attempt_of(order_no)
        outcome = settle_payment(attempt.id, attempt.channel_trade_no or "", attempt.amount_fen, None)
        db.session.commit()
        assert outcome.outcome.startswith("duplicate")
        assert enrollment().expires_at == old_end + timedelta(days=DAYS)
        assert db.session.scalar(select(func.count(AccessExtension.id))) == 1
        assert db.session.get(Order, order_id).status == "paid"


def test_refund_of_a_renewal_takes_back_its_days_only(app, client, clock):
    bought(app, client, clock)
    with app.app_context():
        old_end = enrollment().expires_at
    order_no = renewal_order_no(renew(client))
    pay(app, order_no)
    assert client.post(f"/orders/{order_no}/refund", data={"reason": "changed my mind"}).status_code == 302
    with app.app_context():
        staff_id = create_user("support@example.com", "staff-password", "Sam", role="support")
        refund_id = db.session.scalar(select(Refund.id))
        assert refund_workflow.approve_refund(refund_id, staff_id, "ok") == "approved"
        db.session.commit()
        enqueue("execute_refund", refund_id)
        assert db.session.get(Refund, refund_id).status == "succeeded"
        after = enrollment()
        assert after.expires_at == old_end and after.revoked_at is None
    assert client.get("/courses/limited/lessons/1").status_code == 200


def test_a_renewal_paid_after_the_course_was_refunded_is_refunded_not_extended(app, client, clock):
    bought(app, client, clock)
    order_no = renewal_order_no(renew(client))
    with app.app_context():
        enrollment().revoked_at = clock.current  # as a refund of the purchase does
        db.session.commit()
    pay(app, order_no)
    with app.app_context():
        assert db.session.scalar(select(func.count(AccessExtension.id))) == 0
        assert db.session.scalar(select(OrphanPayment.resolution)) == "refunded"
    refused = renew(client)
    assert refused.headers["Location"].endswith("/courses/limited")


def reminder_keys(app) -> list[str]:
    """The renewal reminders in the e-mail outbox, one key per enrollment and end date."""
    from app.mail.models import OutboxMessage

    with app.app_context():
        return list(db.session.scalars(
            select(OutboxMessage.key).where(OutboxMessage.kind == "access_ending").order_by(OutboxMessage.id)))


def test_the_reminder_fires_once_per_end_date_and_again_after_a_renewal(app, client, clock):
    bought(app, client, clock)
    with app.app_context():
        first_end = enrollment().expires_at
        assert remind_ending_access() == 0
    clock.advance(days=DAYS - 6)
    assert "renewal-reminder" in client.get("/my/courses").text
    assert "renewal-reminder" in client.get("/courses/limited").text
    with app.app_context():
        assert remind_ending_access() == 1
        assert remind_ending_access() == 0
        assert renewal.remind_access_ending(enrollment().id) is False
        assert enrollment().reminded_for_expiry == first_end
        enrollment_id = enrollment().id
    assert reminder_keys(app) == [f"access-ending:{enrollment_id}:{first_end:%Y%m%d%H%M}"]
    pay(app, renewal_order_no(renew(client)))
    clock.advance(days=DAYS)
    with app.app_context():
        assert remind_ending_access() == 1
    second_end = first_end + timedelta(days=DAYS)
    assert reminder_keys(app) == [f"access-ending:{enrollment_id}:{end:%Y%m%d%H%M}" for end in (first_end, second_end)]


def test_someone_elses_renewal_order_is_not_found(app, client, clock):
    bought(app, client, clock)
    order_no = renewal_order_no(renew(client))
    with app.app_context():
        make_learner("bob@example.com")
    other = app.test_client()
    login(other, "bob@example.com")
    assert other.get(f"/orders/{order_no}/pay").status_code == 404
    assert renew(other).headers["Location"].endswith("/courses/limited")


def test_two_renewals_paid_at_the_same_time_both_extend_each_once(app, client, clock):
    bought(app, client, clock)
    with app.app_context():
        user_id, course_id, old_end = enrollment().user_id, enrollment().course_id, enrollment().expires_at
        first = ordering.place_renewal(user_id, course_id, "alipay")
        # The first order's deadline moved back for a moment, so a second one is placed
        # (as when the first is paid late after closing while a new one waits).
        order = db.session.get(Order, first.order_id)
        deadline, order.expires_at = order.expires_at, clock.current
        db.session.flush()
        second = ordering.place_renewal(user_id, course_id, "wechat")
        order.expires_at = deadline
        db.session.commit()
        attempts = [(p.new_attempt_id, db.session.get(Order, p.order_id).total_fen) for p in (first, second)]
    assert first.order_id != second.order_id

    import threading

    from app.payments.settlement import settle_payment

    barrier, outcomes, errors = threading.Barrier(2), [], []

    def pay_one(index: int) -> None:
        try:
            with app.app_context():
                barrier.wait(timeout=30)
                attempt_id, amount_fen = attempts[index]
                outcomes.append(settle_payment(attempt_id, f"T{index}", amount_fen, clock.current).outcome)
                db.session.commit()
                db.session.remove()
        except BaseException as error:  # noqa: BLE001 - asserted below
            errors.append(repr(error))

    threads = [threading.Thread(target=pay_one, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and sorted(outcomes) == ["paid", "paid"]
    with app.app_context():
        assert enrollment().expires_at == old_end + timedelta(days=2 * DAYS)
        periods = sorted((e.from_at, e.to_at) for e in db.session.scalars(select(AccessExtension)))
        assert periods == [(old_end, old_end + timedelta(days=DAYS)),
                           (old_end + timedelta(days=DAYS), old_end + timedelta(days=2 * DAYS))]


def test_the_migration_refuses_a_downgrade_that_would_make_limited_access_lifetime(keys_dir, tmp_path,
                                                                                  empty_database_url):
    from app import create_app
    from tests.conftest import base_config

    migrated = create_app(base_config(empty_database_url, keys_dir, tmp_path))
    runner = migrated.test_cli_runner()
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    with migrated.app_context():
        course_id = make_course(slug="limited")
        learner_id = make_learner("ann@example.com")
        enrollment = Enrollment(user_id=learner_id, course_id=course_id, expires_at=datetime(2027, 1, 1))
        db.session.add(enrollment)
        db.session.flush()
        enrollment_id = enrollment.id
        db.session.commit()
        release_connections()
    refused = runner.invoke(args=["db", "downgrade", BEFORE_RENEWAL])
    assert refused.exit_code != 0 and "enrollments end" in refused.output
    with migrated.app_context():
        assert db.session.get(Enrollment, enrollment_id).expires_at is not None  # nothing changed
        db.session.execute(update(Enrollment).values(expires_at=None))
        db.session.commit()
        release_connections()
    assert runner.invoke(args=["db", "downgrade", BEFORE_RENEWAL]).exit_code == 0
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    with migrated.app_context():
        release_connections()


def release_connections() -> None:
    """Give the session's connection back, then close the pool's, so the migration
    commands (and the test database's removal) find none left open."""
    db.session.remove()
    db.engine.dispose()


def refund_whole(app, client, order_no: str) -> str:
    """The learner asks for the order back; support approves and it runs. Its outcome:
    the refund's status, or the page that refused the request."""
    response = client.post(f"/orders/{order_no}/refund", data={"reason": "no longer needed"})
    with app.app_context():
        refund_id = db.session.scalar(select(Refund.id).join(Order, Order.id == Refund.order_id)
                                      .where(Order.order_no == order_no, Refund.status == "requested"))
        if refund_id is None:
            return response.text
        support = db.session.scalar(select(User.id).where(User.email == "support@example.com"))
        approve_and_run(refund_id, support or staff("support", "support@example.com"))
        return db.session.get(Refund, refund_id).status


def test_a_renewed_purchase_is_refunded_only_after_its_renewal(app, client, clock):
    purchase_no = bought(app, client, clock)
    renewal_no = renewal_order_no(renew(client))
    pay(app, renewal_no)
    refused = refund_whole(app, client, purchase_no)
    assert "has been renewed: refunding it would end the renewed days too" in refused
    with app.app_context():
        assert enrollment().revoked_at is None and db.session.scalar(select(func.count(Refund.id))) == 0
    assert refund_whole(app, client, renewal_no) == "succeeded"
    assert refund_whole(app, client, purchase_no) == "succeeded"
    with app.app_context():
        assert enrollment().revoked_at is not None


def test_a_course_bought_again_keeps_its_days_when_an_old_renewal_is_refunded(app, client, clock):
    """A refund that revoked the course while a renewal of it stood (one racing the
    renewal's payment, say), then a new purchase: the old renewal's days belonged to the
    old holding, and refunding it takes nothing off the new one."""
    purchase_no = bought(app, client, clock)
    renewal_no = renewal_order_no(renew(client))
    pay(app, renewal_no)
    with app.app_context():
        enrollment().revoked_at = clock.current
        db.session.commit()
        course_id = db.session.scalar(select(Course.id))
    clock.advance(days=1)
    pay(app, checkout(client, [course_id]))
    with app.app_context():
        fresh_end = enrollment().expires_at
        assert fresh_end == clock.current + timedelta(days=DAYS)
    assert refund_whole(app, client, renewal_no) == "succeeded"
    with app.app_context():
        assert enrollment().expires_at == fresh_end
    assert purchase_no


def test_a_course_bought_for_life_is_not_renewed_when_the_course_is_limited_later(app, client, clock):
    with app.app_context():
        course_id = make_course(10000, slug="limited")
        make_learner()
    login(client)
    pay(app, checkout(client, [course_id]))
    with app.app_context():
        db.session.get(Course, course_id).access_days = DAYS
        db.session.commit()
    refused = renew(client)
    assert refused.status_code == 302 and refused.headers["Location"].endswith("/courses/limited")
    with app.app_context():
        assert db.session.scalar(select(func.count(Order.id))) == 1


def test_a_renewal_paid_after_access_became_lifetime_is_given_back(app, client, clock):
    """Placed while the learner's access was limited, paid once it was for life (staff
    changed the enrollment meanwhile): nothing to extend, so the money goes back."""
    bought(app, client, clock)
    order_no = renewal_order_no(renew(client))
    with app.app_context():
        enrollment().expires_at = None
        db.session.commit()
    pay(app, order_no)
    with app.app_context():
        assert db.session.scalar(select(func.count(AccessExtension.id))) == 0
        assert db.session.scalar(select(OrphanPayment.resolution)) == "refunded"
        assert db.session.scalar(select(Order.status).where(Order.order_no == order_no)) != "paid"


def test_buying_an_expired_course_again_points_to_renewal(app, client, clock):
    course_id = limited_course(app)
    login(client)
    pay(app, checkout(client, [course_id]))
    clock.advance(days=DAYS + 1)
    with app.app_context():
        from app.checkout.services import CheckoutError, OrderRequest, place_order

        with pytest.raises(CheckoutError, match="renew it from the course page"):
            place_order(OrderRequest(enrollment().user_id, (course_id,), None, "alipay"))


def test_a_renewals_refund_page_counts_only_lessons_opened_in_the_days_it_bought(app, client, clock):
    purchase_no = bought(app, client, clock)
    assert client.get("/courses/limited/lessons/1").status_code == 200
    clock.advance(days=DAYS - 3)
    renewal_no = renewal_order_no(renew(client))
    pay(app, renewal_no)
    assert client.get("/courses/limited/lessons/2").status_code == 200  # still the first period
    clock.advance(days=4)
    assert client.get("/courses/limited/lessons/2").status_code == 200  # the renewed days

    def opened(order_no: str) -> int:
        with app.app_context():
            order_id = db.session.scalar(select(Order.id).where(Order.order_no == order_no))
            [line] = refund_workflow.refund_policy(order_id).lines
            return line.lessons_opened

    assert (opened(purchase_no), opened(renewal_no)) == (2, 1)


def test_no_renewal_while_a_refund_of_the_purchase_is_under_way(app, client, clock):
    purchase_no = bought(app, client, clock)
    assert client.post(f"/orders/{purchase_no}/refund", data={"reason": "changed my mind"}).status_code == 302
    refused = renew(client)
    assert refused.status_code == 302 and refused.headers["Location"].endswith("/courses/limited")
    assert "A refund of this course is under way" in client.get(refused.headers["Location"]).text
    with app.app_context():
        assert db.session.scalar(select(func.count(Order.id))) == 1


def test_a_member_whose_purchase_ended_is_not_offered_a_renewal(app, client, clock):
    from app.membership.models import MembershipPlan

    bought(app, client, clock)
    clock.advance(days=DAYS + 1)
    assert "data-renew" in client.get("/courses/limited").text
    with app.app_context():
        plan = MembershipPlan(title_zh="月度会员", title_en="Monthly", price_fen=9900, period_days=30, pool_bps=5000)
        db.session.add(plan)
        db.session.commit()
        plan_id = plan.id
    pay(app, renewal_order_no(client.post(f"/membership/{plan_id}/buy", data={"channel": "alipay"})))
    page = client.get("/courses/limited").text
    assert "data-renew" not in page and "Open to you with your membership" in page
    assert client.get("/courses/limited/lessons/1").status_code == 200
