"""Placing an order: price snapshots, the coupon redemption, the deadline, the first
payment attempt. Services flush, never commit; the caller commits (DESIGN.md §3)."""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Sequence

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload, lazyload, selectinload

from app.accounts.models import User
from app.bundles.services import BundleError
from app.bundles.services import price_lines as bundle_price_lines
from app.cart.coupons import check_coupon, find_coupon, normalize_code, redeem
from app.cart.pricing import PricedLine, quote
from app.cart.services import tax_rate
from app.catalog.models import Course
from app.catalog.services import expired_course_ids, owned_course_ids
from app.checkout.models import Order, OrderLine, channel_due_fen
from app.earnings.models import OrderLineShare
from app.earnings.rules import authors_of, rate_for, split_share
from app.errors import ServiceError
from app.extensions import db
from app.i18n import in_reader_language
from app.payments.models import PaymentAttempt
from app.payments.registry import enabled_channels, unavailable_reason
from app.timeutil import beijing, now
from app.wallet import spending
from app.wallet.holds import post_hold

MAX_COURSES_PER_ORDER = 50


class CheckoutError(ServiceError):
    """A refusal of this service; see `ServiceError`."""


class IdempotencyConflict(CheckoutError):
    def __init__(self) -> None:
        super().__init__(
            "idempotency_conflict",
            _l("This Idempotency-Key was already used with a different request."),
        )


@dataclass(frozen=True)
class OrderRequest:
    user_id: int
    course_ids: tuple[int, ...]
    coupon_code: str | None
    channel: str
    idempotency_key: str | None = None
    fingerprint: str | None = None
    # The prepaid balance: "none", "full" (it pays everything) or "part" (as much as it
    # holds, the channel the rest); see app/wallet/spending.py.
    use_balance: str = "none"
    # (course id, bundle id) of the courses taken as part of a bundle (app/bundles).
    bundle_of: tuple[tuple[int, int], ...] = ()


def new_order_no() -> str:
    # Beijing date and time, then randomness: sortable, unguessable, at most 22 chars.
    return "CC" + beijing(now()).strftime("%Y%m%d%H%M%S") + f"{secrets.randbelow(10**6):06d}"


def unused_order_no() -> str:
    """A fresh order number no order has. Numbers are the second plus six random digits,
    so two orders in one second can draw the same one; draw again rather than fail."""
    for _ in range(5):
        order_no = new_order_no()
        if db.session.scalar(select(Order.id).where(Order.order_no == order_no)) is None:
            return order_no
    raise CheckoutError("busy", _l("Please try again in a moment."))


def find_by_idempotency_key(user_id: int, key: str) -> Order | None:
    return db.session.scalar(
        select(Order).where(Order.user_id == user_id, Order.idempotency_key == key)
    )


@dataclass(frozen=True)
class PlacedOrder:
    order_id: int
    # The first attempt of an order this call created, not yet sent to its channel;
    # None when an order placed earlier was returned (a repeated Idempotency-Key, or the
    # learner's order already waiting for these courses).
    new_attempt_id: int | None = None


def place_order(request: OrderRequest) -> int:
    """Create a pending order and its first payment attempt; returns the order id.

    With an idempotency key, a repeat of the same request returns the first order, and a
    different request under the same key raises `IdempotencyConflict`.
    """
    return place(request).order_id


def place(request: OrderRequest) -> PlacedOrder:
    """`place_order`, also saying whether the order is new, and its attempt's id."""
    if request.idempotency_key:
        existing = find_by_idempotency_key(request.user_id, request.idempotency_key)
        if existing is not None:
            if existing.request_fingerprint != request.fingerprint:
                raise IdempotencyConflict()
            return PlacedOrder(existing.id)
    if request.channel not in enabled_channels():
        raise CheckoutError("unknown_channel", _l("This payment method is not available."))
    courses = _courses_for(request)
    # Serialise one learner's checkouts, so per-user coupon limits hold under races, and
    # two tabs cannot both open an order for the same course.
    db.session.execute(select(User.id).where(User.id == request.user_id).with_for_update())
    # Under the lock: a checkout that held it before us may have just paid these courses
    # from the balance, which no later step would notice.
    _refuse_owned(request.user_id, [course.id for course in courses])
    waiting = _waiting_order(request, courses)
    if waiting is not None:
        return PlacedOrder(waiting)

    try:
        lines = bundle_price_lines(courses, dict(request.bundle_of))
    except BundleError as error:
        raise CheckoutError(error.code, error.message) from None
    coupon = find_coupon(request.coupon_code) if request.coupon_code else None
    discount = check_coupon(coupon, request.user_id, lines, now()) if coupon else None
    priced = quote(lines, tax_rate(), discount)
    if priced.total_fen <= 0:
        # Free orders need no channel; this release sells paid courses only.
        raise CheckoutError("nothing_to_pay", _l("The order total must be above zero."))
    # Read under the learner's row lock taken above: no other checkout spends it meanwhile.
    from_paid, from_bonus = spending.balance_part(request.user_id, priced.total_fen, request.use_balance)
    due_fen = priced.total_fen - from_paid - from_bonus
    if request.use_balance == "full" and due_fen:
        raise CheckoutError("balance_too_low", _l("Your balance is too low to pay this order. "
                                                  "Pay the rest with Alipay or WeChat Pay."))
    refusal = unavailable_reason(request.channel, due_fen) if due_fen else None
    if refusal is not None:
        raise CheckoutError("channel_unavailable", refusal)

    expires_at = now() + timedelta(minutes=current_app.config["ORDER_TTL_MINUTES"])
    order = Order(
        order_no=unused_order_no(),
        user_id=request.user_id,
        status="pending",
        subtotal_fen=priced.subtotal_fen,
        discount_fen=priced.discount_fen,
        tax_fen=priced.tax_fen,
        total_fen=priced.total_fen,
        coupon_id=coupon.id if coupon else None,
        coupon_code=coupon.code if coupon else None,
        expires_at=expires_at,
        created_at=now(),
        idempotency_key=request.idempotency_key,
        request_fingerprint=request.fingerprint,
        wallet_paid_fen=from_paid,
        wallet_bonus_fen=from_bonus,
    )
    by_id = {course.id: course for course in courses}
    bundle_of = dict(request.bundle_of)
    for priced_line in priced.lines:
        line = sold_line(by_id[priced_line.course_id], priced_line, order.created_at)
        line.bundle_id = bundle_of.get(priced_line.course_id)
        order.lines.append(line)
    db.session.add(order)
    db.session.flush()
    if coupon is not None:
        redeem(coupon, request.user_id, order.id)
    if not due_fen:
        spending.pay_in_full(order)
        return PlacedOrder(order.id)
    if from_paid or from_bonus:
        post_hold(order)
    # No other transaction sees this order before commit: its first attempt needs neither
    # the order's row lock nor a count of the attempts before it (see `new_attempt`).
    attempt_id = add_attempt(order, request.channel, sequence=1)
    return PlacedOrder(order.id, attempt_id)


def open_order(user_id: int, kind: str, subtotal_fen: int, tax_fen: int, channel: str) -> PlacedOrder:
    """A pending order with no course lines, and its first payment attempt: for what is
    sold without a course line (a membership, app/membership), which the caller records
    against the returned order id in the same transaction. No coupon applies."""
    if channel not in enabled_channels():
        raise CheckoutError("unknown_channel", _l("This payment method is not available."))
    total_fen = subtotal_fen + tax_fen
    refusal = unavailable_reason(channel, total_fen)
    if refusal is not None:
        raise CheckoutError("channel_unavailable", refusal)
    db.session.execute(select(User.id).where(User.id == user_id).with_for_update())
    order = Order(
        order_no=unused_order_no(), user_id=user_id, kind=kind, status="pending", subtotal_fen=subtotal_fen,
        discount_fen=0, tax_fen=tax_fen, total_fen=total_fen,
        expires_at=now() + timedelta(minutes=current_app.config["ORDER_TTL_MINUTES"]), created_at=now(),
    )
    db.session.add(order)
    db.session.flush()
    return PlacedOrder(order.id, add_attempt(order, channel, sequence=1))


def sold_line(course: Course, priced: PricedLine, placed_at: datetime) -> OrderLine:
    """The line as sold: price, rate and each author's share are fixed here for good."""
    rate_bps = rate_for(course, placed_at)
    if rate_bps is None:
        # Selling without a revenue-share rule would leave the instructor's part unexplained.
        raise CheckoutError("not_for_sale", _l("%(title)s cannot be bought right now.",
                                               title=in_reader_language(course.title_zh, course.title_en)))
    line = OrderLine(
        course_id=course.id,
        title=course.title_zh,
        instructor_id=course.instructor_id,
        commission_bps=rate_bps,
        list_price_fen=priced.list_price_fen,
        discount_fen=priced.discount_fen,
        tax_fen=priced.tax_fen,
        amount_fen=priced.amount_fen,
        access_days=course.access_days,
    )
    line.shares = [
        OrderLineShare(
            instructor_id=split.instructor_id,
            weight=split.weight,
            weight_total=split.weight_total,
            share_fen=split.share_fen,
        )
        for split in split_share(priced.amount_fen - priced.tax_fen, rate_bps, authors_of(course))
    ]
    return line


def _waiting_order(request: OrderRequest, courses: Sequence[Course]) -> int | None:
    """A pending order of this learner for the same courses (and coupon) is reused, so
    one purchase never has two QR codes waiting to be paid; one that shares only some
    courses is refused, naming it. An order past its deadline no longer counts."""
    wanted = {course.id for course in courses}
    bundle_of = dict(request.bundle_of)
    wanted_lines = {(course_id, bundle_of.get(course_id)) for course_id in wanted}
    waiting = db.session.scalars(
        select(Order)
        .join(OrderLine, OrderLine.order_id == Order.id)
        .where(Order.user_id == request.user_id, Order.status == "pending",
               Order.expires_at > now(), OrderLine.course_id.in_(wanted))
        .order_by(Order.id)
        .distinct()
        # Their lines are compared below; the lines' revenue shares are not needed.
        .options(selectinload(Order.lines).lazyload(OrderLine.shares))
    ).all()
    coupon_code = normalize_code(request.coupon_code) if request.coupon_code else None
    for order in waiting:
        # The same courses bought the same way (one by one, or in the same bundle).
        if {(line.course_id, line.bundle_id) for line in order.lines} == wanted_lines \
                and order.coupon_code == coupon_code:
            _refuse_other_balance_use(order, request.use_balance)
            return order.id
    if waiting:
        order = waiting[0]
        shared = [line for line in order.lines if line.course_id in wanted]
        titles = in_reader_language("、".join(line.title for line in shared),
                                    ", ".join(line.course.title_en for line in shared))
        raise CheckoutError(
            "pending_order",
            _l("%(titles)s is already in order %(order_no)s, waiting for payment until %(time)s. "
               "Pay that order, or order again after it expires.",
               titles=titles, order_no=order.order_no, time=f"{beijing(order.expires_at):%H:%M}"),
        )
    return None


def _courses_for(request: OrderRequest) -> list[Course]:
    course_ids = list(dict.fromkeys(request.course_ids))
    if not course_ids:
        raise CheckoutError("empty_cart", _l("Choose at least one course."))
    if len(course_ids) > MAX_COURSES_PER_ORDER:
        raise CheckoutError("too_many_courses", _l("Too many courses in one order."))
    courses = list(
        db.session.scalars(select(Course).where(Course.id.in_(course_ids), Course.is_published))
    )
    if len(courses) != len(course_ids):
        raise CheckoutError("course_not_found", _l("A course in this order does not exist."))
    order_of_request = {course_id: index for index, course_id in enumerate(course_ids)}
    return sorted(courses, key=lambda course: order_of_request[course.id])


def _refuse_other_balance_use(order: Order, use_balance: str) -> None:
    """The waiting order is reused only as it was placed: handing back an order without
    the balance to a learner who asked to pay from it (or the other way round) would
    charge them otherwise than they chose."""
    from_balance = bool(order.wallet_paid_fen or order.wallet_bonus_fen)
    if from_balance == (use_balance in ("full", "part")):
        return
    until = f"{beijing(order.expires_at):%H:%M}"
    if from_balance:
        message = _l("Order %(order_no)s for these courses, paid partly from your balance, is waiting for "
                     "payment until %(time)s. Pay that order, or order again after it expires.",
                     order_no=order.order_no, time=until)
    else:
        message = _l("Order %(order_no)s for these courses, without your balance, is waiting for payment "
                     "until %(time)s. Pay that order, or order again after it expires.",
                     order_no=order.order_no, time=until)
    raise CheckoutError("pending_order", message)


def _refuse_owned(user_id: int, course_ids: list[int]) -> None:
    owned = owned_course_ids(user_id) & set(course_ids)
    if not owned:
        return
    if owned <= expired_course_ids(user_id):
        raise CheckoutError("course_owned", _l("You own this course already, but your access has ended: "
                                               "renew it from the course page."))
    raise CheckoutError("course_owned", _l("You already own a course in this order."))


def new_attempt(order: Order, channel: str) -> int:
    """Another payment attempt for a committed order; returns its id."""
    # Serialise attempts of one order: their sequence numbers must not collide.
    db.session.execute(select(Order.id).where(Order.id == order.id).with_for_update())
    sequence = (
        db.session.scalar(
            select(func.count(PaymentAttempt.id)).where(PaymentAttempt.order_id == order.id)
        )
        or 0
    ) + 1
    return add_attempt(order, channel, sequence)


def add_attempt(order: Order, channel: str, sequence: int) -> int:
    """A payment attempt with its own out_trade_no, sharing the order's deadline."""
    attempt = PaymentAttempt(
        order_id=order.id,
        channel=channel,
        out_trade_no=f"{order.order_no}P{sequence:02d}",
        amount_fen=channel_due_fen(order),
        status="created",
        expires_at=order.expires_at,
        created_at=now(),
    )
    db.session.add(attempt)
    db.session.flush()
    return attempt.id


ORDER_NO_RE = re.compile(r"CC[0-9]{20}")


def order_for_user(order_no: str, user_id: int, with_lines: bool = False) -> Order | None:
    """The order if it belongs to this learner; someone else's order is simply not found,
    and text that cannot be an order number is not even looked up.

    ``with_lines`` loads the lines and their courses in the same query, for a page that
    lists them; their revenue shares stay unloaded (a learner is not shown them)."""
    if not ORDER_NO_RE.fullmatch(order_no):
        return None
    query = select(Order).where(Order.order_no == order_no, Order.user_id == user_id)
    if with_lines:
        query = query.options(joinedload(Order.lines).options(joinedload(OrderLine.course),
                                                              lazyload(OrderLine.shares)))
    return db.session.scalars(query).unique().one_or_none()


def order_with_lines(order_id: int) -> Order:
    """The order and its lines in one query; the lines' revenue shares are left unloaded
    (what a learner is shown of an order does not include them)."""
    return db.session.scalars(
        select(Order)
        .where(Order.id == order_id)
        .options(joinedload(Order.lines).lazyload(OrderLine.shares))
    ).unique().one()


def current_attempt(order_id: int) -> PaymentAttempt | None:
    return db.session.scalar(
        select(PaymentAttempt)
        .where(PaymentAttempt.order_id == order_id)
        .order_by(PaymentAttempt.id.desc())
        .limit(1)
    )


def my_orders(user_id: int) -> Sequence[Order]:
    return list(
        db.session.scalars(
            select(Order).where(Order.user_id == user_id).order_by(Order.id.desc()).limit(100)
        )
    )



class SwitchRefused(CheckoutError):
    pass


@dataclass(frozen=True)
class ChannelSwitch:
    attempt_id: int
    created: bool  # a new attempt, not yet sent to its channel
    superseded_attempt_ids: tuple[int, ...]


def switch_channel(order_id: int, user_id: int, channel: str) -> ChannelSwitch:
    """A new attempt on ``channel`` for a pending order; the open ones it supersedes are
    returned for the caller to close at their channels (after commit)."""
    order = db.session.get(Order, order_id)
    if order is None or order.user_id != user_id:
        raise SwitchRefused("order_not_found", _l("No such order."))
    if order.status != "pending" or now() >= order.expires_at:
        raise SwitchRefused("order_not_pending", _l("This order can no longer be paid."))
    refusal = unavailable_reason(channel, channel_due_fen(order))
    if refusal is not None:
        raise SwitchRefused("channel_unavailable", refusal)
    current = current_attempt(order.id)
    if current is not None and current.channel == channel and current.status == "created":
        return ChannelSwitch(current.id, False, ())
    open_ids = tuple(
        db.session.scalars(
            select(PaymentAttempt.id).where(
                PaymentAttempt.order_id == order.id, PaymentAttempt.status == "created"
            )
        )
    )
    return ChannelSwitch(new_attempt(order, channel), True, open_ids)
