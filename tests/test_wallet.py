"""The prepaid balance: top-ups with bonus tiers, paying from the balance (alone or with a
channel for the rest), the hold of a mixed order given back when it closes, refunds back
to the balance, and two racing spends that cannot overdraw it."""
from __future__ import annotations

import json
import re
import threading
import traceback

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.catalog.models import Enrollment
from app.checkout.models import Order
from app.checkout.services import CheckoutError, OrderRequest, place_order
from app.config import ConfigError, load_config
from app.extensions import db
from app.ledger import accounts
from app.ledger.models import JournalEntry, Posting
from app.ledger.services import balance, unbalanced_entry_ids
from app.payments import refund_workflow
from app.payments.models import PaymentAttempt, Refund
from app.payments.resolution import expire_order
from app.payments.settlement import settle_payment
from app.wallet.holds import wallet_balance
from app.wallet.refunds import cumulative_parts
from app.wallet.tiers import bonus_for, spend_order
from tests.helpers import attempt_of, login, make_course, make_learner, pay_at_emulator
from tests.test_refunds import approve_and_run, order_account_sums, order_of, staff

TIERS = ((50000, 2000), (100000, 5000))


# --- pure rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(("amount", "bonus"), [(1000, 0), (49999, 0), (50000, 2000), (99999, 2000),
                                               (100000, 5000), (500000, 5000)])
def test_the_bonus_is_that_of_the_highest_tier_reached(amount, bonus):
    assert bonus_for(amount, TIERS) == bonus


@pytest.mark.parametrize(("paid", "bonus", "amount", "spent"), [
    (50000, 2000, 9450, (9450, 0)), (5000, 2000, 6000, (5000, 1000)), (0, 2000, 3000, (0, 2000)),
    (100, 0, 50, (50, 0)),
])
def test_paid_money_is_spent_before_bonus(paid, bonus, amount, spent):
    assert spend_order(paid, bonus, amount) == spent


def test_bonus_tiers_are_configuration_and_nonsense_is_refused(tmp_path):
    config = load_config(str(tmp_path), {"WALLET_BONUS_TIERS": "100000:8000, 50000:2000"})
    assert config["WALLET_BONUS_TIERS"] == ((50000, 2000), (100000, 8000))
    assert load_config(str(tmp_path), {"WALLET_BONUS_TIERS": ""})["WALLET_BONUS_TIERS"] == ()
    for bad in ("500:20:1", "¥500:20", "-5:1", "five:1", "100:1000", "5000:5000"):
        with pytest.raises(ConfigError):
            load_config(str(tmp_path), {"WALLET_BONUS_TIERS": bad})
    with pytest.raises(ConfigError, match="WALLET_MIN_TOPUP_FEN"):
        load_config(str(tmp_path), {"WALLET_MIN_TOPUP_FEN": "20000", "WALLET_MAX_TOPUP_FEN": "10000"})


def test_refunding_an_order_in_any_pieces_returns_exactly_each_source():
    order = Order(total_fen=10001, wallet_paid_fen=3333, wallet_bonus_fen=1667)
    seen = (0, 0, 0)
    refunded = 0
    for piece in (1, 2, 997, 3001, 5000, 1000):
        refunded += piece
        parts = cumulative_parts(order, refunded)
        assert sum(parts) == refunded
        assert all(now >= before for now, before in zip(parts, seen))  # no piece is negative
        seen = parts
    assert seen == (5001, 3333, 1667)


@settings(max_examples=300, deadline=None)
@given(channel=st.integers(0, 10**7), paid=st.integers(0, 10**7), bonus=st.integers(0, 10**7),
       cuts=st.lists(st.integers(0, 3 * 10**7), max_size=12))
def test_any_order_refunded_in_any_pieces_gives_each_source_a_growing_share_ending_exact(channel, paid, bonus, cuts):
    """The same, for any mix of sources and any pieces: each step's part of each source is
    never negative, and the whole refund returns exactly what each put in."""
    total = channel + paid + bonus
    assume(total > 0)
    order = Order(total_fen=total, wallet_paid_fen=paid, wallet_bonus_fen=bonus)
    ends = sorted({cut % (total + 1) for cut in cuts} | {total})  # where the pieces end
    seen = (0, 0, 0)
    for refunded in ends:
        parts = cumulative_parts(order, refunded)
        assert sum(parts) == refunded
        assert all(now >= before for now, before in zip(parts, seen))
        seen = parts
    assert seen == (channel, paid, bonus)


# --- through the site -----------------------------------------------------------------------


def top_up(app, client, yuan: str, channel: str = "alipay") -> str:
    response = client.post("/wallet/topup", data={"amount": yuan, "channel": channel})
    assert response.status_code == 302, response.text
    match = re.search(r"/orders/([A-Z0-9]+)/pay", response.headers["Location"])
    assert match, response.headers["Location"]
    with app.app_context():
        qr = attempt_of(match.group(1)).qr_code
    pay_at_emulator(app, qr)
    return match.group(1)


def learner_with_courses(app, client, prices: list[int]) -> tuple[int, list[int]]:
    with app.app_context():
        course_ids = [make_course(price, slug=f"w{index}-{price}") for index, price in enumerate(prices)]
        user_id = make_learner()
    login(client)
    return user_id, course_ids


def check_out(client, course_ids: list[int], use_balance: str, channel: str = "alipay"):
    for course_id in course_ids:
        client.post(f"/cart/add/{course_id}")
    return client.post("/cart/checkout", data={"channel": channel, "use_balance": use_balance})


@pytest.mark.parametrize("channel", ["alipay", "wechat"])
def test_a_top_up_of_500_yuan_gives_520_and_sells_nothing(app, client, channel):
    user_id, _ = learner_with_courses(app, client, [10000])
    order_no = top_up(app, client, "500", channel)
    with app.app_context():
        order = order_of(order_no)
        assert (order.kind, order.status, order.total_fen, order.topup_bonus_fen) == ("topup", "paid", 50000, 2000)
        assert wallet_balance(user_id).paid_fen == 50000 and wallet_balance(user_id).bonus_fen == 2000
        assert db.session.scalar(select(func.count(Enrollment.id))) == 0
        sums = order_account_sums(order.id)
        fee = db.session.scalar(select(PaymentAttempt.fee_fen).where(PaymentAttempt.order_id == order.id))
        assert sums == {accounts.channel(channel): 50000 - fee, accounts.CHANNEL_FEES: fee,
                        accounts.learner_wallet(user_id): -50000, accounts.WALLET_BONUS_EXPENSE: 2000,
                        accounts.learner_wallet_bonus(user_id): -2000}
        assert not [account for account in sums if account.startswith(("instructor:", "tax:", "platform:revenue"))]
    page = client.get("/wallet").text
    assert "¥520.00" in page and "¥500.00" in page and "¥20.00" in page
    assert client.get(f"/orders/{order_no}/refund").status_code == 200  # says why not, changes nothing
    assert client.post(f"/orders/{order_no}/refund", data={"reason": "want cash"}).status_code == 200
    with app.app_context():
        assert db.session.scalar(select(func.count(Refund.id))) == 0


@pytest.mark.parametrize(("yuan", "message"), [("9.99", "at least ¥10.00"), ("50000.01", "at most ¥50000.00"),
                                               ("-5", "such as 500"), ("1e3", "such as 500"), ("", "Enter an amount")])
def test_a_top_up_outside_the_limits_is_refused_and_creates_nothing(app, client, yuan, message):
    learner_with_courses(app, client, [10000])
    response = client.post("/wallet/topup", data={"amount": yuan, "channel": "alipay"}, follow_redirects=True)
    assert response.status_code == 200 and message in response.text
    with app.app_context():
        assert db.session.scalar(select(func.count(Order.id))) == 0


def test_someone_elses_top_up_is_not_found(app, client):
    learner_with_courses(app, client, [10000])
    response = client.post("/wallet/topup", data={"amount": "50", "channel": "alipay"})
    order_no = response.headers["Location"].split("/")[-2]
    with app.app_context():
        make_learner("bob@example.com")
    other = app.test_client()
    login(other, "bob@example.com")
    for url in (f"/orders/{order_no}/pay", f"/orders/{order_no}/status", f"/orders/{order_no}/refund"):
        assert other.get(url).status_code == 404
    assert other.post(f"/orders/{order_no}/channel", data={"channel": "wechat"}).status_code == 404


def test_an_order_paid_from_the_balance_is_paid_at_once_and_refunded_back_to_it(app, client):
    user_id, (course_id,) = learner_with_courses(app, client, [9450])
    top_up(app, client, "100")
    response = check_out(client, [course_id], "full")
    assert response.status_code == 302 and "/pay" in response.headers["Location"]
    order_no = response.headers["Location"].split("/")[-2]
    with app.app_context():
        order = order_of(order_no)
        assert (order.status, order.wallet_paid_fen, order.wallet_bonus_fen) == ("paid", 9450, 0)
        assert db.session.scalar(select(func.count(PaymentAttempt.id)).where(PaymentAttempt.order_id == order.id)) == 0
        assert db.session.scalar(select(Enrollment.course_id).where(Enrollment.user_id == user_id)) == course_id
        assert wallet_balance(user_id).paid_fen == 10000 - 9450
        sale = order_account_sums(order.id)
        assert sale[accounts.learner_wallet(user_id)] == 9450
        assert sale[accounts.PLATFORM_REVENUE] < 0 and sale.get(accounts.TAX_PAYABLE, 0) <= 0
    assert "Paid" in client.get(f"/orders/{order_no}/pay").text
    client.post(f"/orders/{order_no}/refund", data={"reason": "not for me"})
    with app.app_context():
        refund = db.session.scalar(select(Refund))
        assert refund.attempt_id is None and refund.refund_no == f"{order_no}W01"
        approve_and_run(refund.id, staff("support", "support@example.com"))
        refund = db.session.scalar(select(Refund))
        assert (refund.status, refund.wallet_paid_fen, refund.wallet_bonus_fen, refund.fee_fen) == (
            "succeeded", 9450, 0, 0)
        assert order_of(order_no).status == "refunded"
        assert wallet_balance(user_id).paid_fen == 10000
        assert set(order_account_sums(order_of(order_no).id).values()) == {0}
        assert db.session.scalar(select(Enrollment.revoked_at)) is not None
        assert unbalanced_entry_ids() == []


def test_an_instructor_statement_shows_a_balance_sale_as_a_sale_with_no_fee(app, client):
    user_id, (course_id,) = learner_with_courses(app, client, [9450])
    top_up(app, client, "100")
    order_no = check_out(client, [course_id], "full").headers["Location"].split("/")[-2]
    with app.app_context():
        from app.catalog.models import Course
        from app.earnings import statements

        document = statements.open_document(db.session.get(Course, course_id).instructor_id)
        [row] = document.rows
        assert (row.kind, row.order_no, row.amount_fen, row.fee_fen) == ("sale", order_no, 9450, 0)
        assert (document.sales_fen, document.adjustments_fen) == (row.share_fen, 0) and row.share_fen > 0


def test_the_dashboard_counts_what_courses_sold_not_top_ups(app, client):
    _, (course_id,) = learner_with_courses(app, client, [9450])
    top_up(app, client, "100")
    check_out(client, [course_id], "full")
    with app.app_context():
        from app.admin.queries import dashboard

        figures = dashboard()
        assert (figures.paid_orders, figures.revenue_fen) == (1, 9450)


def test_an_app_client_pays_from_the_balance_through_the_api(app, client):
    from app.accounts.services import create_token

    user_id, (cheap, dear) = learner_with_courses(app, client, [5000, 20000])
    top_up(app, client, "100")
    with app.app_context():
        token = create_token(user_id, "phone")
        db.session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    bad = client.post("/api/v1/orders", json={"course_ids": [cheap], "use_balance": "all"}, headers=headers)
    assert (bad.status_code, bad.json["code"]) == (422, "invalid_use_balance")
    too_low = client.post("/api/v1/orders", json={"course_ids": [dear], "use_balance": "full"}, headers=headers)
    assert (too_low.status_code, too_low.json["code"]) == (422, "balance_too_low")
    paid = client.post("/api/v1/orders", json={"course_ids": [cheap], "use_balance": "full"}, headers=headers)
    assert paid.status_code == 201, paid.json
    assert (paid.json["status"], paid.json["wallet_paid_fen"], paid.json["qr_code"]) == ("paid", 5000, None)
    mixed = client.post("/api/v1/orders", json={"course_ids": [dear], "use_balance": "part", "channel": "wechat"},
                        headers=headers)
    assert mixed.status_code == 201, mixed.json
    assert (mixed.json["status"], mixed.json["wallet_paid_fen"], mixed.json["channel"]) == ("pending", 5000, "wechat")
    assert mixed.json["qr_code"]


def test_balance_only_with_too_little_balance_is_refused_and_changes_nothing(app, client):
    user_id, (course_id,) = learner_with_courses(app, client, [20000])
    top_up(app, client, "100")
    response = check_out(client, [course_id], "full")
    assert response.headers["Location"].endswith("/cart/")
    assert "Your balance is too low" in client.get("/cart/").text
    with app.app_context():
        assert db.session.scalar(select(func.count(Order.id)).where(Order.kind == "course")) == 0
        assert wallet_balance(user_id).paid_fen == 10000


def test_balance_plus_channel_pays_the_rest_and_refunds_each_part_to_its_source(app, client):
    user_id, (course_id,) = learner_with_courses(app, client, [60000])
    top_up(app, client, "500")  # 500 paid + 20 bonus
    response = check_out(client, [course_id], "part", "wechat")
    order_no = response.headers["Location"].split("/")[-2]
    with app.app_context():
        order = order_of(order_no)
        assert (order.status, order.wallet_paid_fen, order.wallet_bonus_fen) == ("pending", 50000, 2000)
        attempt = attempt_of(order_no)
        assert (attempt.channel, attempt.amount_fen) == ("wechat", 8000)
        assert wallet_balance(user_id).total_fen == 0
        assert balance(accounts.wallet_hold(order.id)) == -52000
        qr = attempt.qr_code
    pay_at_emulator(app, qr)
    with app.app_context():
        order = order_of(order_no)
        assert order.status == "paid" and balance(accounts.wallet_hold(order.id)) == 0
    client.post(f"/orders/{order_no}/refund", data={"reason": "not for me"})
    with app.app_context():
        refund = db.session.scalar(select(Refund))
        # ¥600 is a large refund: the approval rules are the same whatever paid it.
        first = refund_workflow.approve_refund(refund.id, staff("support", "sam@example.com"), "ok")
        assert first == "awaiting_finance"
        db.session.commit()
        approve_and_run(refund.id, staff("finance", "fin@example.com"))
        refund = db.session.scalar(select(Refund))
        assert (refund.status, refund.amount_fen, refund.wallet_paid_fen, refund.wallet_bonus_fen) == (
            "succeeded", 60000, 50000, 2000)
        assert wallet_balance(user_id).paid_fen == 50000 and wallet_balance(user_id).bonus_fen == 2000
        assert set(order_account_sums(order_of(order_no).id).values()) == {0}
        # Only the channel's part went back through the channel: the emulator refunded 80 yuan.
        assert refund.channel_refund_no


def receipts_of(order_no: str) -> list[dict]:
    """The order's receipts as signed, each checked against the platform key."""
    from app.receipts.models import Receipt
    from app.receipts.services import receipt_key
    from app.receipts.verification import verify_receipt

    found = db.session.scalars(select(Receipt).where(Receipt.order_id == order_of(order_no).id)
                               .order_by(Receipt.id)).all()
    assert all(verify_receipt(r.canonical_json, r.signature, receipt_key()).valid for r in found)
    return [json.loads(r.canonical_json) for r in found]


def test_balance_payments_and_their_refunds_get_receipts_that_say_what_the_balance_gave(app, client):
    user_id, (whole, mixed) = learner_with_courses(app, client, [9450, 60000])
    top_up_no = top_up(app, client, "500")  # 500 paid + 20 bonus
    full_no = check_out(client, [whole], "full").headers["Location"].split("/")[-2]
    mixed_no = check_out(client, [mixed], "part", "wechat").headers["Location"].split("/")[-2]
    with app.app_context():
        qr = attempt_of(mixed_no).qr_code
    pay_at_emulator(app, qr)
    client.post(f"/orders/{full_no}/refund", data={"reason": "not for me"})
    with app.app_context():
        approve_and_run(db.session.scalar(select(Refund.id)), staff("support", "support@example.com"))
        [topup] = receipts_of(top_up_no)
        assert (topup["kind"], topup["amount_fen"], topup["bonus_fen"], topup["items"][0]["amount_fen"]) == (
            "payment", 50000, 2000, 50000)
        paid, refunded = receipts_of(full_no)
        assert (paid["kind"], paid["receipt_no"][0], paid["channel"], paid["channel_trade_no"]) == (
            "balance", "B", "balance", None)
        assert paid["amount_fen"] == paid["balance_fen"] == 9450
        assert (refunded["kind"], refunded["channel"], refunded["amount_fen"], refunded["balance_fen"]) == (
            "refund", "balance", 9450, 9450)
        [mixed_paid] = receipts_of(mixed_no)
        # The whole ¥600, of which the balance gave all it still held: ¥520 less ¥94.50.
        assert (mixed_paid["kind"], mixed_paid["channel"], mixed_paid["amount_fen"], mixed_paid["balance_fen"]) == (
            "payment", "wechat", 60000, 52000 - 9450)
        assert sum(item["amount_fen"] for item in mixed_paid["items"]) == mixed_paid["amount_fen"]
        from app.mail.models import OutboxMessage

        mails = {m.key: m.body_text for m in db.session.scalars(select(OutboxMessage))}
        topup_mail = mails[f"order-paid:{order_of(top_up_no).id}"]
        assert "¥500.00 is added to your prepaid balance" in topup_mail and "¥20.00" in topup_mail
        assert "Of which from your prepaid balance: ¥425.50" in mails[f"order-paid:{order_of(mixed_no).id}"]
        refund_mail = next(body for key, body in mails.items() if key.startswith("refund-succeeded:"))
        assert "¥94.50" in refund_mail and "to your prepaid balance" in refund_mail
        assert "bank" not in refund_mail  # nothing went through a channel
    page = client.get(f"/receipts/{paid['receipt_no']}").text
    assert "Balance payment receipt" in page and "Prepaid balance" in page
    pdf = client.get(f"/receipts/{paid['receipt_no']}.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")


def test_a_mixed_order_that_closes_unpaid_gives_the_held_balance_back(app, client, clock):
    user_id, (course_id,) = learner_with_courses(app, client, [30000])
    top_up(app, client, "100")
    order_no = check_out(client, [course_id], "part").headers["Location"].split("/")[-2]
    with app.app_context():
        assert wallet_balance(user_id).total_fen == 0
        order_id = order_of(order_no).id
    clock.advance(minutes=30)
    with app.app_context():
        assert expire_order(order_id).outcome == "closed"
        assert order_of(order_no).status == "closed"
        assert wallet_balance(user_id).paid_fen == 10000 and wallet_balance(user_id).bonus_fen == 0
        assert set(order_account_sums(order_id).values()) == {0}
        # Money arriving after all cannot take back a balance that may be spent: refunded.
        attempt = attempt_of(order_no)
        settlement = settle_payment(attempt.id, "LATE1", attempt.amount_fen, None)
        db.session.commit()
        assert settlement.refund_id is not None and "balance part" in settlement.outcome
        assert order_of(order_no).status == "closed"
        assert wallet_balance(user_id).paid_fen == 10000


def test_the_checkout_page_offers_the_balance_only_to_a_learner_who_has_one(app, client):
    _, (course_id,) = learner_with_courses(app, client, [10000])
    client.post(f"/cart/add/{course_id}")
    assert 'name="use_balance"' not in client.get("/cart/").text
    top_up(app, client, "10")
    page = client.get("/cart/").text
    assert 'name="use_balance"' in page and "¥10.00" in page


def race_two_balance_checkouts(app, course_ids: list[int], user_id: int) -> list[str]:
    """Two checkouts of one learner paying from the balance alone, released together;
    each one's outcome: "paid" or the refusal's code."""
    barrier = threading.Barrier(2)
    outcomes: list[str] = []
    errors: list[str] = []

    def spend(course_id: int) -> None:
        try:
            with app.app_context():
                barrier.wait(timeout=30)
                try:
                    place_order(OrderRequest(user_id, (course_id,), None, "alipay", use_balance="full"))
                    db.session.commit()
                    outcomes.append("paid")
                except CheckoutError as error:
                    db.session.rollback()
                    outcomes.append(error.code)
        except BaseException:  # noqa: BLE001 - reported by the assert below
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=spend, args=(course_id,)) for course_id in course_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    return sorted(outcomes)


def learner_with_balance(app, fen: int) -> int:
    with app.app_context():
        user_id = make_learner()
        from app.ledger.services import post_entry
        post_entry("topup", "test:seed", [(accounts.channel("alipay"), fen),
                                          (accounts.learner_wallet(user_id), -fen)])
        db.session.commit()
    return user_id


def test_racing_spends_of_one_balance_never_overdraw_it(app):
    """Each for a course the balance covers alone: exactly one is paid from the balance,
    the other is refused."""
    with app.app_context():
        courses = [make_course(8000, slug=f"race{index}") for index in range(2)]
    user_id = learner_with_balance(app, 10000)
    assert race_two_balance_checkouts(app, courses, user_id) == ["balance_too_low", "paid"]
    with app.app_context():
        assert wallet_balance(user_id).paid_fen == 2000
        paid_courses = select(func.count(Order.id)).where(Order.status == "paid", Order.kind == "course")
        assert db.session.scalar(paid_courses) == 1
        assert db.session.scalar(select(func.count(JournalEntry.id)).where(JournalEntry.kind == "wallet_payment")) == 1
        assert db.session.scalar(select(func.min(Posting.amount_fen)).where(
            Posting.account == accounts.learner_wallet(user_id))) == -10000


def test_two_tabs_buying_one_course_from_the_balance_pay_for_it_once(app):
    """The balance covers both: the one that waited for the other finds the course owned
    (checked under the learner's lock, not before it) and spends nothing."""
    with app.app_context():
        course_id = make_course(8000, slug="twice")
    user_id = learner_with_balance(app, 20000)
    assert race_two_balance_checkouts(app, [course_id, course_id], user_id) == ["course_owned", "paid"]
    with app.app_context():
        assert wallet_balance(user_id).paid_fen == 12000
        assert db.session.scalar(select(func.count(Order.id)).where(Order.kind == "course")) == 1


# --- the migration --------------------------------------------------------------------------

BEFORE_WALLET = "3f9a6c2e8d15"
WALLET_REVISION = "c2d7e5a91b38"


def test_the_migration_keeps_existing_orders_and_refuses_to_drop_balance_money(keys_dir, tmp_path,
                                                                               empty_database_url):
    """Orders from before are course orders paid by no balance; a downgrade that would
    forget what the balance paid is refused, one with nothing of the balance goes through."""
    from app import create_app
    from tests.conftest import base_config
    from tests.test_migrations import A_STAFF_MEMBER

    migrated = create_app(base_config(empty_database_url, keys_dir, tmp_path))
    runner = migrated.test_cli_runner()

    def sql(statement: str) -> list[tuple]:
        with migrated.app_context():
            with db.engine.begin() as connection:
                result = connection.exec_driver_sql(statement)
                rows = [tuple(row) for row in result] if result.returns_rows else []
            db.engine.dispose()
        return rows

    assert runner.invoke(args=["db", "upgrade", BEFORE_WALLET]).exit_code == 0
    sql(A_STAFF_MEMBER)  # user 7
    sql("INSERT INTO orders (id, order_no, user_id, status, currency, subtotal_fen, discount_fen, tax_fen, total_fen,"
        " expires_at, created_at) VALUES (1, 'O1', 7, 'paid', 'CNY', 9900, 0, 0, 9900, '2026-11-01 00:15:00',"
        " '2026-11-01 00:00:00')")
    assert runner.invoke(args=["db", "upgrade", WALLET_REVISION]).exit_code == 0
    assert sql("SELECT kind, wallet_paid_fen, wallet_bonus_fen, topup_bonus_fen FROM orders") == [("course", 0, 0, 0)]
    sql("INSERT INTO orders (id, order_no, user_id, status, currency, subtotal_fen, discount_fen, tax_fen, total_fen,"
        " expires_at, created_at, kind, topup_bonus_fen) VALUES (2, 'T2', 7, 'paid', 'CNY', 50000, 0, 0, 50000,"
        " '2026-11-01 00:15:00', '2026-11-01 00:00:00', 'topup', 2000)")
    refused = runner.invoke(args=["db", "downgrade", BEFORE_WALLET])
    assert refused.exit_code != 0 and "prepaid balance" in refused.output
    sql("DELETE FROM orders WHERE id = 2")
    assert runner.invoke(args=["db", "downgrade", BEFORE_WALLET]).exit_code == 0
    assert sql("SELECT order_no, total_fen FROM orders") == [("O1", 9900)]
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    with migrated.app_context():
        db.engine.dispose()


def test_a_waiting_order_is_not_handed_back_to_a_checkout_that_chose_otherwise_about_the_balance(app):
    with app.app_context():
        course_id = make_course(8000, slug="wait")
    user_id = learner_with_balance(app, 20000)
    with app.app_context():
        first = place_order(OrderRequest(user_id, (course_id,), None, "alipay"))
        db.session.commit()
        order_no = db.session.get(Order, first).order_no
        with pytest.raises(CheckoutError, match=f"Order {order_no} for these courses, without your balance"):
            place_order(OrderRequest(user_id, (course_id,), None, "alipay", use_balance="full"))
        db.session.rollback()
        assert place_order(OrderRequest(user_id, (course_id,), None, "wechat")) == first  # as placed: reused
        assert wallet_balance(user_id).paid_fen == 20000
        assert db.session.scalar(select(func.count(Order.id)).where(Order.kind == "course")) == 1


def test_the_history_shows_the_newest_movements_whole(app):
    user_id = learner_with_balance(app, 1000)
    with app.app_context():
        from app.ledger.services import post_entry
        from app.wallet.services import history

        for index, (paid, bonus) in enumerate([(2000, 100), (3000, 200)]):  # two legs each
            post_entry("topup", f"test:more{index}", [(accounts.channel("alipay"), paid + bonus),
                                                      (accounts.learner_wallet(user_id), -paid),
                                                      (accounts.learner_wallet_bonus(user_id), -bonus)])
        db.session.commit()
        assert [(m.paid_fen, m.bonus_fen) for m in history(user_id, limit=2)] == [(3000, 200), (2000, 100)]
        assert [(m.paid_fen, m.bonus_fen) for m in history(user_id)] == [(3000, 200), (2000, 100), (1000, 0)]
