"""Membership: bought as an order without course lines, it opens every published course
for its period; its instructor pool is spread over the months of the period and each
month's part is shared between the courses by the lessons members opened, to the fen."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update

from app.accounts.services import create_user
from app.catalog.models import Course, Enrollment, Instructor, Lesson
from app.catalog.services import record_lesson_view
from app.checkout.models import Order
from app.earnings import statements
from app.earnings.models import Statement
from app.earnings.rules import set_authors
from app.earnings.statement_files import statement_csv, statement_pdf
from app.extensions import db
from app.jobs.periodic import tick
from app.ledger import accounts
from app.ledger.models import JournalEntry
from app.ledger.services import balance, unbalanced_entry_ids
from app.membership.models import Membership, MembershipPlan, MembershipPool, MembershipPoolShare
from app.membership.ordering import place_membership_order
from app.membership.pools import month_opens, monthly_parts, share_month
from app.membership.services import MEMBERSHIP_POOL, MembershipError, is_member
from app.membership.staff import PlanEditError, PlanValues, save_plan
from app.payments.models import PaymentAttempt
from app.payments.refund_workflow import RefundError, request_refund
from app.payments.settlement import settle_payment
from tests.earnings_helpers import make_course_of, make_instructor, owed, sell
from tests.helpers import login, make_learner

NOVEMBER_20 = datetime(2026, 11, 20, 2, 0)  # 10:00 in Beijing
DECEMBER_1 = datetime(2026, 12, 1, 2, 0)


def _world() -> dict[str, int]:
    lin, ada = make_instructor("Lin", 7000), make_instructor("Ada", 5000)
    ids = {"lin": lin, "ada": ada, "a": make_course_of(lin, 9900, "a"), "b": make_course_of(ada, 19900, "b"),
           "c": make_course_of(ada, 4900, "c")}
    # Ten days from November 20 fall inside November; ¥2 with half to instructors: a pool of 100 fen.
    plan = MembershipPlan(title_zh="十日会员", title_en="Ten days", price_fen=200, period_days=10, pool_bps=5000)
    db.session.add(plan)
    db.session.commit()
    ids["plan"] = plan.id
    return ids


def _buy(learner: int, plan_id: int) -> int:
    order_id = place_membership_order(learner, plan_id, "alipay").order_id
    db.session.commit()
    attempt = db.session.scalar(select(PaymentAttempt).where(PaymentAttempt.order_id == order_id))
    assert settle_payment(attempt.id, f"T{attempt.id}", attempt.amount_fen, None).outcome == "paid"
    db.session.commit()
    return order_id


def _open(learner: int, course_id: int, lessons: int) -> None:
    """The learner opens the course's first ``lessons`` lessons (made as needed)."""
    course = db.session.get(Course, course_id)
    while len(course.lessons) < lessons:
        course.lessons.append(Lesson(position=len(course.lessons) + 1, title_zh="课", title_en="Lesson"))
    db.session.flush()
    for lesson in sorted(course.lessons, key=lambda lesson: lesson.position)[:lessons]:
        record_lesson_view(learner, lesson)
    db.session.commit()


def test_a_pool_is_spread_over_the_months_of_the_period_by_time():
    # 30 days from November 20 10:00 Beijing: 254 hours in November, 466 in December.
    # 1000 × 254 / 720 = 352.78 and 647.22: the larger remainder takes the spare fen.
    assert monthly_parts(1000, NOVEMBER_20, datetime(2026, 12, 20, 2, 0)) == {"2026-11": 353, "2026-12": 647}
    assert monthly_parts(100, NOVEMBER_20, datetime(2026, 11, 30, 2, 0)) == {"2026-11": 100}


def test_paying_books_the_pool_and_opens_every_course(app, clock):
    with app.app_context():
        ids = _world()
        learner = make_learner()
        assert not is_member(learner)
        order_id = _buy(learner, ids["plan"])
        order = db.session.get(Order, order_id)
        membership = db.session.scalar(select(Membership).where(Membership.order_id == order_id))
        assert (order.status, order.total_fen, order.lines) == ("paid", 200, [])
        assert (membership.starts_at, membership.ends_at, membership.pool_fen) == (
            NOVEMBER_20, datetime(2026, 11, 30, 2, 0), 100)
        assert balance(MEMBERSHIP_POOL) == -100
        assert balance(accounts.PLATFORM_REVENUE) == -100
        assert unbalanced_entry_ids() == []
        assert is_member(learner)
        clock.current = datetime(2026, 11, 30, 2, 0)
        assert not is_member(learner)


def test_the_dashboard_counts_a_paid_membership_as_sold_today(app, clock):
    from app.admin.queries import dashboard

    with app.app_context():
        ids = _world()
        _buy(make_learner(), ids["plan"])
        assert (dashboard().paid_orders, dashboard().revenue_fen) == (1, 200)


def test_a_member_studies_any_course_during_the_period_only(app, client, clock):
    with app.app_context():
        ids = _world()
        learner = make_learner()
    login(client)
    assert client.get("/courses/b/lessons/1").headers["Location"].endswith("/courses/b")  # not a member yet
    with app.app_context():
        _buy(learner, ids["plan"])
    assert client.get("/courses/b/lessons/1").status_code == 200
    assert "Open to you with your membership" in client.get("/courses/b").text
    clock.current = datetime(2026, 11, 30, 3, 0)
    assert client.get("/courses/b/lessons/1").status_code == 302


def test_opens_2_1_0_share_an_uneven_pool_to_the_fen(app, clock):
    with app.app_context():
        ids = _world()
        learner = make_learner()
        _buy(learner, ids["plan"])
        _open(learner, ids["a"], 2)
        _open(learner, ids["b"], 1)  # course c: opened by nobody
        assert month_opens("2026-11") == [(ids["a"], 2), (ids["b"], 1)]
        clock.current = DECEMBER_1
        assert tick()["membership_pools"] == 1
        # 100 × 2/3 = 66.67 and 100 × 1/3 = 33.33: the larger remainder takes the spare fen.
        assert owed(ids["lin"]) == (0, 67)
        assert owed(ids["ada"]) == (0, 33)
        assert balance(MEMBERSHIP_POOL) == 0
        assert unbalanced_entry_ids() == []
        pool = db.session.scalar(select(MembershipPool))
        assert (pool.period, pool.pool_fen, pool.opens) == ("2026-11", 100, 3)
        assert tick()["membership_pools"] == 0  # shared once
        rows = statements.open_document(ids["lin"]).rows
        assert [(row.kind, row.course_title, row.weight_note, row.share_fen) for row in rows] == [
            ("sale", "课程 a", "2/3", 67)]
        assert "Membership pool 2026-11 of ¥1.00" in rows[0].memo and "2 of 3" in rows[0].memo


def test_a_co_authored_course_splits_its_part_by_weight(app, clock):
    with app.app_context():
        ids = _world()
        set_authors(ids["a"], [(ids["lin"], 2), (ids["ada"], 1)], None, "co-authored")
        db.session.commit()
        learner = make_learner()
        _buy(learner, ids["plan"])
        _open(learner, ids["a"], 2)
        _open(learner, ids["b"], 1)
        clock.current = DECEMBER_1
        share_month("2026-11")
        db.session.commit()
        # Course a's 67: 44.67 to Lin and 22.33 to Ada -> 45 and 22; Ada also has b's 33.
        assert owed(ids["lin"]) == (0, 45)
        assert owed(ids["ada"]) == (0, 55)
        shares = db.session.scalars(select(MembershipPoolShare)).all()
        assert sum(share.share_fen for share in shares) == 100


def test_a_month_without_opens_leaves_the_pool_with_the_platform(app, clock):
    with app.app_context():
        ids = _world()
        _buy(make_learner(), ids["plan"])
        clock.current = DECEMBER_1
        pool = share_month("2026-11")
        db.session.commit()
        assert (pool.pool_fen, pool.opens) == (100, 0)
        assert "stays with the platform" in pool.memo
        entry = db.session.get(JournalEntry, pool.entry_id)
        assert "stays with the platform" in entry.memo
        assert balance(MEMBERSHIP_POOL) == 0
        assert balance(accounts.PLATFORM_REVENUE) == -200
        assert owed(ids["lin"]) == owed(ids["ada"]) == (0, 0)


def test_opens_of_a_bought_course_and_outside_the_period_do_not_count(app, clock):
    with app.app_context():
        ids = _world()
        learner = make_learner()
        clock.current = datetime(2026, 11, 19, 2, 0)
        _open(learner, ids["b"], 5)  # the day before the membership: not a member's open
        clock.current = NOVEMBER_20
        sell(learner, [ids["a"]])
        _buy(learner, ids["plan"])
        _open(learner, ids["a"], 4)  # bought: paid for already
        _open(learner, ids["c"], 1)
        assert month_opens("2026-11") == [(ids["c"], 1)]
        clock.current = DECEMBER_1
        share_month("2026-11")
        db.session.commit()
        lin_sale = (9900 * 7000 + 5000) // 10000
        assert owed(ids["lin"]) == (lin_sale, 0)
        assert owed(ids["ada"]) == (0, 100)


def test_opens_of_a_bought_course_whose_access_had_ended_count_for_the_membership(app, clock):
    with app.app_context():
        ids = _world()
        learner = make_learner()
        clock.current = NOVEMBER_20
        sell(learner, [ids["a"]])
        db.session.execute(update(Enrollment).values(expires_at=NOVEMBER_20 + timedelta(days=1)))
        _buy(learner, ids["plan"])
        _open(learner, ids["a"], 1)  # still the purchase's days
        clock.current = NOVEMBER_20 + timedelta(days=2)
        _open(learner, ids["a"], 2)  # the purchase has ended: the membership opens it
        assert month_opens("2026-11") == [(ids["a"], 2)]


def test_reopening_a_lesson_and_an_authors_own_opens_move_nothing(app, clock):
    with app.app_context():
        ids = _world()
        member = make_learner()
        author = create_user("lin@example.com", "correct-horse", "Lin")
        db.session.get(Instructor, ids["lin"]).user_id = author
        db.session.commit()
        clock.current = NOVEMBER_20
        _buy(member, ids["plan"])
        _buy(author, ids["plan"])
        for _ in range(3):
            _open(member, ids["a"], 1)  # one lesson, opened three times: one open
        _open(member, ids["b"], 2)
        _open(author, ids["a"], 2)  # Lin's own course
        _open(author, ids["c"], 1)
        assert month_opens("2026-11") == [(ids["a"], 1), (ids["b"], 2), (ids["c"], 1)]


def test_a_period_bought_while_one_runs_follows_it(app, clock):
    with app.app_context():
        ids = _world()
        learner = make_learner()
        _buy(learner, ids["plan"])
        clock.advance(days=2)
        _buy(learner, ids["plan"])
        periods = db.session.execute(select(Membership.starts_at, Membership.ends_at).order_by(Membership.id)).all()
        assert [tuple(period) for period in periods] == [
            (NOVEMBER_20, datetime(2026, 11, 30, 2, 0)),
            (datetime(2026, 11, 30, 2, 0), datetime(2026, 12, 10, 2, 0))]


def test_a_waiting_order_is_reused_and_an_inactive_plan_refused(app):
    with app.app_context():
        ids = _world()
        learner = make_learner()
        first = place_membership_order(learner, ids["plan"], "alipay")
        db.session.commit()
        assert place_membership_order(learner, ids["plan"], "alipay").order_id == first.order_id
        db.session.get(MembershipPlan, ids["plan"]).is_active = False
        db.session.commit()
        learner2 = make_learner("bob@example.com")
        with pytest.raises(MembershipError):
            place_membership_order(learner2, ids["plan"], "alipay")


def test_a_membership_has_no_lines_to_refund(app):
    with app.app_context():
        ids = _world()
        learner = make_learner()
        order_id = _buy(learner, ids["plan"])
        with pytest.raises(RefundError):
            request_refund(order_id, learner, None, "changed my mind")


def test_the_web_flow_buys_a_membership_to_the_pay_page(app, client):
    with app.app_context():
        ids = _world()
        make_learner()
    assert "Ten days" in client.get("/membership/").text
    login(client)
    bought = client.post(f"/membership/{ids['plan']}/buy", data={"channel": "alipay"})
    assert bought.status_code == 302 and "/pay" in bought.headers["Location"]
    page = client.get(bought.headers["Location"])
    assert page.status_code == 200 and "Membership" in page.text and "¥2.00" in page.text
    refused = client.post("/membership/999/buy", data={"channel": "alipay"}, follow_redirects=True)
    assert "not available" in refused.text


@pytest.mark.parametrize(("values", "code"), [
    (dict(price_fen=0), "price"), (dict(period_days=0), "period_days"), (dict(pool_bps=10001), "pool_bps"),
    (dict(title_en=" "), "title_required"),
])
def test_staff_cannot_save_a_plan_that_breaks_a_rule(app, values, code):
    with app.app_context():
        staff = create_user("fay@example.com", "staff-password", "Fay", role="finance")
        db.session.commit()
        base = dict(title_zh="月度", title_en="Monthly", price_fen=9900, period_days=30, pool_bps=5000,
                    is_active=True)
        with pytest.raises(PlanEditError) as refused:
            save_plan(None, PlanValues(**{**base, **values}), staff, "new plan")
        assert refused.value.code == code
        db.session.rollback()
        assert db.session.get(MembershipPlan, save_plan(None, PlanValues(**base), staff, "new plan")).pool_bps == 5000


def test_published_courses_only(app, client):
    with app.app_context():
        ids = _world()
        learner = make_learner()
        _buy(learner, ids["plan"])
        db.session.get(Course, ids["c"]).is_published = False
        db.session.commit()
    login(client)
    assert client.get("/courses/c/lessons/1").status_code == 302


def test_a_part_booked_after_its_month_was_shared_goes_into_the_next_month(app, clock):
    with app.app_context():
        ids = _world()
        clock.current = DECEMBER_1
        assert share_month("2026-11").pool_fen == 0  # nothing paid yet when November was shared
        db.session.commit()
        clock.current = datetime(2026, 11, 25, 2, 0)  # a payment of November, booked late
        _buy(make_learner(), ids["plan"])
        clock.current = datetime(2027, 1, 1, 2, 0)
        december = share_month("2026-12")
        db.session.commit()
        assert december.pool_fen == 100  # November's missed part and December's
        assert balance(MEMBERSHIP_POOL) == 0


def test_the_closed_statement_prints_the_membership_line_in_csv_and_pdf(app, clock):
    with app.app_context():
        ids = _world()
        learner = make_learner()
        _buy(learner, ids["plan"])
        _open(learner, ids["a"], 2)
        _open(learner, ids["b"], 1)
        clock.current = DECEMBER_1
        tick()  # shares November's pool, posted in December
        clock.current = datetime(2027, 1, 2, 2, 0)
        tick()  # closes December
        statement = db.session.scalar(select(Statement).where(Statement.instructor_id == ids["lin"],
                                                              Statement.period == "2026-12"))
        assert (statement.sales_fen, statement.available_fen, statement.closing_fen) == (67, 67, 67)
        assert "Membership" in statement.rule_text
        document = statements.stored_document(statement)
        csv_text = statement_csv(document).decode("utf-8-sig")
        assert "Membership pool 2026-11" in csv_text and "2/3" in csv_text
        assert statement_pdf(document).startswith(b"%PDF")
