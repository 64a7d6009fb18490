"""What happened, order by order: who bought which courses when, how they paid, and
which payments were refunded. Pure: no database, no money arithmetic (see books.py).

Seeded orders are numbered 0, 1, 2… in the order they are written. Order k belongs to
chunk k // CHUNK, and every chunk is drawn from its own `random.Random`, so the first N
orders are the same whether they were seeded at once or 10k, then 100k, then 1M at a
time. A learner's orders all lie in one chunk, which is how the plan knows every course
a learner already bought: nobody is sold a course twice (the enrolment is unique, and
settlement would turn the second payment into an orphan).
"""
from __future__ import annotations

import random
from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from itertools import accumulate

from app.benchdata.catalog import BENCH_DOMAIN, FIXED_COUPON, LEARNER_EMAIL, PERCENT_COUPON, BenchCatalog
from app.earnings.periods import period_end, period_of, period_start, previous_period

CHUNK = 1000
SEED = "coursecashier-bench-1"
BIG_COURSE = -1  # stands for the big course among a plan's course indexes
# In the big month a share of orders comes on top of the year's even spread (a sales
# campaign), and most orders placed that month include the big course: at 1M orders it holds
# well over 100,000 sale lines of the big instructor.
BIG_MONTH_BOOST = 0.14
BIG_COURSE_IN_BIG_MONTH = 0.9
PAID = 0.86
SWITCHED_CHANNEL = 0.1
REFUNDED = 0.03
WITH_COUPON = 0.12
LINES = ((1, 0.6), (2, 0.28), (3, 0.12))
ORDERS_PER_LEARNER = (40, 20, 12, 8, 6, 5, 3, 2, 2, 2)  # weights of 1, 2, … 10 orders
# Orders by hour of the day, Beijing time: evenings are busy, nights quiet.
HOUR_WEIGHTS = (2, 1, 0.5, 0.3, 0.3, 0.5, 1, 2, 3, 4, 5, 5, 6, 5, 5, 5, 5, 5, 6, 8, 10, 11, 9, 5)
DESIGNATED_EVERY = 40  # the designated learner owns orders 0, 40, 80, … 960
BEIJING_OFFSET = timedelta(hours=8)  # Asia/Shanghai has had no daylight saving since 1991
# Everything an order sets in motion (payment, expiry) is over this long before the
# history ends, so no seeded row lies in the future of the history.
SETTLE_MARGIN = timedelta(hours=1)
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
_GIVEN = "伟芳娜敏静磊洋艳勇军杰娟涛明超霞平刚桂英华玉兰萍鹏辉婷建红丽晨宇欣然子涵浩轩梓睿一诺佳怡雨桐思远嘉"
REFUND_REASONS = ("课程内容与预期不符", "重复购买了", "买错课程了", "The course is not for me",
                  "No time to study it now", "讲师口音听不太懂")


@dataclass(frozen=True)
class Timeline:
    start: datetime  # the first moment an order may be placed (naive UTC, as stored)
    last_order: datetime  # orders are placed before this
    end: datetime  # the history ends: nothing seeded happens at or after it
    big_period: str  # "2026-10": the month the big instructor's statement covers
    big_start: datetime
    big_end: datetime


def timeline(history_end: datetime, history: timedelta) -> Timeline:
    """The months of a history ending at ``history_end``; the big month is the last full
    calendar month before it, Beijing time, as statements count months."""
    big_period = previous_period(period_of(history_end))
    return Timeline(start=history_end - history, last_order=history_end - SETTLE_MARGIN, end=history_end,
                    big_period=big_period, big_start=period_start(big_period), big_end=period_end(big_period))


@dataclass(frozen=True, slots=True)
class LearnerPlan:
    email: str
    name: str
    registered_at: datetime


@dataclass(frozen=True, slots=True)
class AttemptPlan:
    channel: str
    opened_after: timedelta  # after the order was placed
    closed_after: timedelta | None  # superseded by a switch, or expired unpaid


@dataclass(frozen=True, slots=True)
class RefundPlan:
    line_positions: tuple[int, ...]  # which of the order's lines go back
    requested_after: timedelta  # after the payment
    approved_after: timedelta  # after the request (the first approval)
    second_approval_after: timedelta  # after the first, when the refund is large
    succeeded_after: timedelta  # after the last approval: sent, and back at the channel
    reason: str


@dataclass(frozen=True, slots=True)
class OrderPlan:
    number: int
    learner: int  # index into the chunk's learners
    placed_at: datetime
    course_indexes: tuple[int, ...]  # into BenchCatalog.courses, or BIG_COURSE
    coupon: str | None
    attempts: tuple[AttemptPlan, ...]  # the last one is paid when the order is
    paid_after: timedelta | None  # after placement; None: the order expired unpaid
    notify_id: int  # 128 random bits, the channel's notification id
    delays: tuple[float, float, float]  # seconds: callback received, booked, shares released
    redelivered: bool
    refund: RefundPlan | None


@dataclass(frozen=True)
class ChunkPlan:
    chunk: int
    learners: tuple[LearnerPlan, ...]
    orders: tuple[OrderPlan, ...]


def _uniform(rng: random.Random, low: float, high: float) -> timedelta:
    return timedelta(seconds=rng.uniform(low, high))


def _weighted(rng: random.Random, cumulative: tuple[float, ...]) -> int:
    """An index drawn by cumulative weights (what `random.choices` does, for one draw)."""
    return bisect_right(cumulative, rng.random() * cumulative[-1])


_HOURS = tuple(accumulate(HOUR_WEIGHTS))
_LEARNER_SIZES = tuple(accumulate(ORDERS_PER_LEARNER))
_LINE_COUNTS = tuple(accumulate(weight for _, weight in LINES))
_EPOCH = datetime(1970, 1, 1)


def _moment(rng: random.Random, first: datetime, last: datetime, residue: int) -> datetime:
    """A moment in [first, last), busier in the Beijing evening, whose whole second is
    ``residue`` modulo 16.

    Order numbers are the second of placement plus six digits from the order's number
    modulo 10**6 (`order_no`); orders k and k + 10**6 differ in their residue, so they
    never fall in the same second and their numbers never clash.
    """
    first_day = (first + BEIJING_OFFSET).date()
    days = ((last + BEIJING_OFFSET).date() - first_day).days + 1
    while True:
        day = first_day + timedelta(days=rng.randrange(days))
        local = datetime.combine(day, time(_weighted(rng, _HOURS))) + timedelta(seconds=rng.randrange(3600))
        utc = local - BEIJING_OFFSET
        seconds = int((utc - _EPOCH).total_seconds())
        utc -= timedelta(seconds=(seconds - residue) % 16)
        if first <= utc < last:
            return utc + timedelta(microseconds=rng.randrange(1_000_000))


def plan_chunk(chunk: int, catalog: BenchCatalog, line: Timeline, ttl: timedelta) -> ChunkPlan:
    rng = random.Random(f"{SEED}:{chunk}")
    owners = _owners(rng, chunk)
    learner_count = max(owners) + 1
    owned: list[set[int]] = [set() for _ in range(learner_count)]
    first_order: list[datetime | None] = [None] * learner_count
    orders = []
    for slot, learner in enumerate(owners):
        number = chunk * CHUNK + slot
        residue = number // 10**6 % 16
        in_big_month = rng.random() < BIG_MONTH_BOOST
        if in_big_month:
            placed_at = _moment(rng, line.big_start, min(line.big_end, line.last_order), residue)
        else:
            placed_at = _moment(rng, line.start, line.last_order, residue)
        courses = _courses(rng, catalog, owned[learner], line.big_start <= placed_at < line.big_end)
        first = first_order[learner]
        first_order[learner] = placed_at if first is None or placed_at < first else first
        paid = number == 0 or rng.random() < PAID  # order 0 is the designated learner's example
        orders.append(_order(rng, number, learner, placed_at, courses, catalog, ttl, paid))
    learners = tuple(_learner(rng, chunk, index, first_order[index] or line.start) for index in range(learner_count))
    return ChunkPlan(chunk, learners, tuple(orders))


def _owners(rng: random.Random, chunk: int) -> list[int]:
    """The learner (index in the chunk) of each slot; in chunk 0, learner 0 is the
    designated one and owns every DESIGNATED_EVERY-th order."""
    slots = list(range(CHUNK))
    owners = [0] * CHUNK
    first_learner = 0
    if chunk == 0:
        slots = [slot for slot in slots if slot % DESIGNATED_EVERY]
        first_learner = 1
    rng.shuffle(slots)
    learner, position = first_learner, 0
    while position < len(slots):
        size = _weighted(rng, _LEARNER_SIZES) + 1
        for slot in slots[position:position + size]:
            owners[slot] = learner
        position += size
        learner += 1
    return owners


def _courses(rng: random.Random, catalog: BenchCatalog, owned: set[int], in_big_month: bool) -> tuple[int, ...]:
    count = LINES[_weighted(rng, _LINE_COUNTS)][0]
    picked: list[int] = []
    if in_big_month and BIG_COURSE not in owned and rng.random() < BIG_COURSE_IN_BIG_MONTH:
        picked.append(BIG_COURSE)
    for _ in range(count * 6):  # most learners own a handful of 199 courses: few redraws
        if len(picked) >= count:
            break
        index = catalog.pick_course(rng)
        if index not in owned and index not in picked:
            picked.append(index)
    start = rng.randrange(len(catalog.courses))
    for step in range(len(catalog.courses)):  # the designated learner owns many: walk on
        if len(picked) >= count:
            break
        index = (start + step) % len(catalog.courses)
        if index not in owned and index not in picked:
            picked.append(index)
    owned.update(picked)
    return tuple(picked)


def _order(rng: random.Random, number: int, learner: int, placed_at: datetime, courses: tuple[int, ...],
           catalog: BenchCatalog, ttl: timedelta, paid: bool) -> OrderPlan:
    ttl_seconds = ttl.total_seconds()
    channel = "alipay" if rng.random() < 0.55 else "wechat"
    attempts = []
    opened = 0.0
    if rng.random() < SWITCHED_CHANNEL and ttl_seconds > 120:
        # The learner switched channel: the first QR is superseded and closed.
        opened = rng.uniform(30, min(300, ttl_seconds - 60))
        attempts.append(AttemptPlan(channel, timedelta(0), timedelta(seconds=opened + rng.uniform(0.5, 3))))
        channel = "wechat" if channel == "alipay" else "alipay"
    paid_after = None
    if paid:
        quick = rng.random() < 0.7
        paid_after = opened + rng.uniform(15, 90 if quick else max(90.0, ttl_seconds - opened - 5))
        paid_after = timedelta(seconds=min(paid_after, ttl_seconds - 1) // 1)  # channels report whole seconds
        attempts.append(AttemptPlan(channel, timedelta(seconds=opened), None))
    else:
        attempts.append(AttemptPlan(channel, timedelta(seconds=opened), ttl + _uniform(rng, 5, 60)))
    coupon = None
    if rng.random() < WITH_COUPON:
        coupon = PERCENT_COUPON if rng.random() < 0.5 else FIXED_COUPON
        prices = [catalog.big_course.price_fen if index == BIG_COURSE else catalog.courses[index].price_fen
                  for index in courses]
        if coupon == FIXED_COUPON and sum(prices) < 10000:
            coupon = None  # under the coupon's minimum: checkout would refuse it
    refund = None
    if paid and number != 0 and rng.random() < REFUNDED:
        positions = tuple(range(len(courses)))
        if len(courses) > 1 and rng.random() < 0.5:
            positions = (rng.randrange(len(courses)),)
        refund = RefundPlan(
            line_positions=positions, requested_after=_uniform(rng, 3600, 4 * 86400),
            approved_after=_uniform(rng, 600, 20 * 3600), second_approval_after=_uniform(rng, 600, 6 * 3600),
            succeeded_after=_uniform(rng, 5, 95), reason=rng.choice(REFUND_REASONS),
        )
    return OrderPlan(
        number=number, learner=learner, placed_at=placed_at, course_indexes=courses, coupon=coupon,
        attempts=tuple(attempts), paid_after=paid_after, notify_id=rng.getrandbits(128),
        delays=(rng.uniform(0.1, 1.5), rng.uniform(0.05, 2.0), rng.uniform(5, 90)),
        redelivered=rng.random() < 0.02, refund=refund,
    )


def _learner(rng: random.Random, chunk: int, index: int, first_order: datetime) -> LearnerPlan:
    name = rng.choice(_SURNAMES) + "".join(rng.choices(_GIVEN, k=rng.choice((1, 2))))
    registered_at = first_order - _uniform(rng, 600, 90 * 86400)
    if chunk == 0 and index == 0:
        return LearnerPlan(LEARNER_EMAIL, "基准 Bench Learner", registered_at)
    return LearnerPlan(f"learner-{chunk:05d}-{index:03d}@{BENCH_DOMAIN}", name, registered_at)


def order_no(plan: OrderPlan) -> str:
    """As `app.checkout.services.new_order_no` writes one: "CC", the Beijing second of
    placement, six digits. The digits are the order's number modulo 10**6, scrambled
    (7919 is coprime with 10**6, so no two numbers share digits), and `_moment` keeps
    orders with equal digits out of the same second."""
    digits = (plan.number * 7919 + 123457) % 10**6
    return f"CC{(plan.placed_at + BEIJING_OFFSET):%Y%m%d%H%M%S}{digits:06d}"
