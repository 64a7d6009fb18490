"""The bench catalogue: instructors with logins, courses and lessons, commission rules,
co-authors, two coupons, and the support and finance staff who decide refunds.

It is made once, dated before the seeded history, and found again by its e-mails and
slugs on every later run, so every run sells the same courses at the same rates.
"""
from __future__ import annotations

import random
from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate

from sqlalchemy import or_, select

from app.accounts.models import User
from app.cart.models import Coupon
from app.catalog.models import Course, Instructor, Lesson
from app.earnings.models import CommissionRule, CourseAuthor
from app.extensions import db

BENCH_DOMAIN = "bench.invalid"
LEARNER_EMAIL = f"bench-learner@{BENCH_DOMAIN}"
BIG_INSTRUCTOR_EMAIL = f"bench-big-instructor@{BENCH_DOMAIN}"
SUPPORT_EMAIL = f"bench-support@{BENCH_DOMAIN}"
FINANCE_EMAIL = f"bench-finance@{BENCH_DOMAIN}"
# Every seeded account signs in with it: a benchmark database is never a real one.
BENCH_PASSWORD = "bench-seed-password"

BIG_COURSE_SLUG = "bench-big-course"
COURSE_SLUG_PREFIX = "bench-"
INSTRUCTORS = 50
COURSES = 200  # the big course included
HISTORY = timedelta(days=365)
# The catalogue is dated this long before the first seeded order, so every sale finds
# its course and commission rule already in force.
CATALOGUE_LEAD = timedelta(days=30)
PRICES_FEN = (1990, 2990, 4990, 6990, 9900, 12900, 14900, 19900, 29900, 39900, 59900)
BIG_COURSE_PRICE_FEN = 19900
BIG_COURSE_RATE_BPS = 7000
DEFAULT_RATES_BPS = (5000, 6000, 6500, 7000, 7500)
PERCENT_COUPON = "BENCH10"
FIXED_COUPON = "BENCH20OFF"

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
_GIVEN = ("伟", "芳", "娜", "敏", "静", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明", "超", "秀英", "思远", "雨桐", "子涵", "浩然")
_TOPICS = (
    ("Python 数据分析", "Python Data Analysis"), ("Go 后端开发", "Backend Development in Go"),
    ("机器学习", "Machine Learning"), ("产品经理", "Product Management"), ("UI 设计", "UI Design"),
    ("雅思口语", "IELTS Speaking"), ("Excel 办公", "Excel at Work"), ("摄影后期", "Photo Editing"),
    ("前端工程化", "Front-end Engineering"), ("PostgreSQL 调优", "PostgreSQL Tuning"),
    ("短视频运营", "Short Video Marketing"), ("财务报表", "Reading Financial Statements"),
    ("日语入门", "Japanese for Beginners"), ("项目管理", "Project Management"),
    ("深度学习", "Deep Learning"), ("Kubernetes 实战", "Kubernetes in Practice"),
    ("品牌设计", "Brand Design"), ("商务英语", "Business English"), ("算法面试", "Algorithm Interviews"),
    ("心理学通识", "Introduction to Psychology"),
)
_LEVELS = (("入门", "Foundations"), ("进阶", "Intermediate"), ("实战", "in Practice"),
           ("精讲", "Deep Dive"), ("训练营", "Bootcamp"), ("30 天", "in 30 Days"),
           ("面试题", "Interview Questions"), ("案例课", "Case Studies"), ("大师课", "Masterclass"),
           ("速成", "Crash Course"))
_LESSONS = (("课程介绍", "Welcome"), ("核心概念", "Core ideas"), ("动手练习", "Hands-on practice"),
            ("常见误区", "Common mistakes"), ("综合案例", "A complete example"), ("总结与答疑", "Wrap-up and Q&A"))
_COLOURS = (("#2563eb", "#1e3a8a"), ("#16a34a", "#14532d"), ("#db2777", "#831843"),
            ("#ea580c", "#7c2d12"), ("#7c3aed", "#4c1d95"), ("#0891b2", "#164e63"))


@dataclass(frozen=True)
class BenchCourse:
    id: int
    instructor_id: int
    title_zh: str
    price_fen: int
    # (instructor id, weight) in the order `app.earnings.rules.authors_of` returns them.
    authors: tuple[tuple[int, int], ...]
    # Rules of this course, then of its instructor: (effective_from, rule id, rate), newest first.
    course_rules: tuple[tuple[datetime, int, int], ...]
    instructor_rules: tuple[tuple[datetime, int, int], ...]

    def rate_at(self, moment: datetime) -> int:
        """The rate `app.earnings.rules.rate_for` gives a sale placed at ``moment``: the
        newest course rule in force, else the newest instructor default (read from the
        rules held here, instead of two queries per line)."""
        for rules in (self.course_rules, self.instructor_rules):
            for effective_from, _, rate_bps in rules:
                if effective_from <= moment:
                    return rate_bps
        raise LookupError(f"course {self.id} has no commission rule in force at {moment}")


@dataclass(frozen=True)
class BenchCatalog:
    courses: tuple[BenchCourse, ...]  # every course but the big one, by slug
    big_course: BenchCourse
    big_instructor_id: int
    support_id: int
    finance_id: int
    coupon_ids: dict[str, int]
    made_at: datetime  # when the catalogue was made; the history is dated from it
    popularity: tuple[float, ...]  # cumulative weights of ``courses``, for bisect

    @property
    def history_end(self) -> datetime:
        """The moment the seeded history ends: fixed by the catalogue, so every run (and
        the benchmark reading it back) sees the same months."""
        return self.made_at + CATALOGUE_LEAD + HISTORY

    def pick_course(self, rng: random.Random) -> int:
        """An index into ``courses``, popular ones more often."""
        return bisect_right(self.popularity, rng.random() * self.popularity[-1])


def ensure_catalog(moment: datetime, password_hash: str) -> BenchCatalog:
    """The bench catalogue, made now (dated ``moment`` − history − lead) if it is missing.
    Flushes; the caller commits."""
    if _user_id(BIG_INSTRUCTOR_EMAIL) is None:
        _make_catalog(moment - HISTORY - CATALOGUE_LEAD, password_hash)
    return load_catalog()


def load_catalog() -> BenchCatalog:
    courses = list(db.session.scalars(
        select(Course).where(Course.slug.like(COURSE_SLUG_PREFIX + "%")).order_by(Course.slug)
    ))
    course_ids = [course.id for course in courses]
    instructor_ids = sorted({course.instructor_id for course in courses})
    authors: dict[int, list[tuple[int, int]]] = {}
    for row in db.session.scalars(
        select(CourseAuthor).where(CourseAuthor.course_id.in_(course_ids)).order_by(CourseAuthor.id)
    ):
        authors.setdefault(row.course_id, []).append((row.instructor_id, row.weight))
    rules = db.session.scalars(
        select(CommissionRule)
        .where(or_(CommissionRule.course_id.in_(course_ids), CommissionRule.instructor_id.in_(instructor_ids)),
               CommissionRule.withdrawn_at.is_(None))
        .order_by(CommissionRule.effective_from.desc(), CommissionRule.id.desc())
    ).all()

    def bench_course(course: Course) -> BenchCourse:
        return BenchCourse(
            id=course.id, instructor_id=course.instructor_id, title_zh=course.title_zh,
            price_fen=course.price_fen,
            authors=tuple(authors.get(course.id) or [(course.instructor_id, 1)]),
            course_rules=tuple((r.effective_from, r.id, r.rate_bps) for r in rules if r.course_id == course.id),
            instructor_rules=tuple(
                (r.effective_from, r.id, r.rate_bps) for r in rules if r.instructor_id == course.instructor_id
            ),
        )

    big = next(course for course in courses if course.slug == BIG_COURSE_SLUG)
    others = tuple(bench_course(course) for course in courses if course.slug != BIG_COURSE_SLUG)
    # Popularity falls with the course's place in the catalogue (a long tail), fixed by slug.
    popularity = tuple(accumulate(1.0 / (1 + index % 40) ** 0.8 for index in range(len(others))))
    coupons = db.session.execute(
        select(Coupon.code, Coupon.id).where(Coupon.code.in_((PERCENT_COUPON, FIXED_COUPON)))
    ).all()
    return BenchCatalog(
        courses=others, big_course=bench_course(big), big_instructor_id=big.instructor_id,
        support_id=_user_id(SUPPORT_EMAIL) or 0, finance_id=_user_id(FINANCE_EMAIL) or 0,
        coupon_ids=dict(coupons), made_at=big.created_at, popularity=popularity,
    )


def _user_id(email: str) -> int | None:
    return db.session.scalar(select(User.id).where(User.email == email))


def _make_catalog(made_at: datetime, password_hash: str) -> None:
    """Rows a real catalogue would hold. Rules are inserted as they stood, not through
    `add_rule`, which refuses a rule dated in the past: here the past is the point."""
    rng = random.Random("bench-catalogue")

    def user(email: str, name: str, role: str) -> User:
        account = User(email=email, display_name=name, password_hash=password_hash, role=role,
                       is_active_account=True, created_at=made_at)
        db.session.add(account)
        return account

    user(SUPPORT_EMAIL, "客服 Bench Support", "support")
    user(FINANCE_EMAIL, "财务 Bench Finance", "finance")
    instructors = []
    for number in range(INSTRUCTORS):
        name = rng.choice(_SURNAMES) + rng.choice(_GIVEN)
        email = BIG_INSTRUCTOR_EMAIL if number == 0 else f"bench-instructor-{number:02d}@{BENCH_DOMAIN}"
        account = user(email, name, "instructor")
        db.session.flush()
        instructor = Instructor(user_id=account.id, name=name, bio_zh=f"{name}，资深讲师。",
                                bio_en=f"{name}, a seasoned teacher.")
        db.session.add(instructor)
        instructors.append(instructor)
    db.session.flush()
    big_instructor, others = instructors[0], instructors[1:]
    rules = [CommissionRule(instructor_id=big_instructor.id, rate_bps=BIG_COURSE_RATE_BPS,
                            effective_from=made_at, reason="bench catalogue", created_at=made_at)]
    for instructor in others:
        rate = rng.choice(DEFAULT_RATES_BPS)
        rules.append(CommissionRule(instructor_id=instructor.id, rate_bps=rate, effective_from=made_at,
                                    reason="bench catalogue", created_at=made_at))
        if rng.random() < 0.15:  # a renegotiated rate, half-way through the history
            changed_at = made_at + CATALOGUE_LEAD + HISTORY / 2
            rules.append(CommissionRule(
                instructor_id=instructor.id, rate_bps=rate + rng.choice((-500, 500)),
                effective_from=changed_at, reason="renegotiated", created_at=changed_at - timedelta(days=14),
            ))
    courses = [Course(slug=BIG_COURSE_SLUG, instructor_id=big_instructor.id, title_zh="高并发系统设计实战",
                      title_en="High-Concurrency System Design in Practice", price_fen=BIG_COURSE_PRICE_FEN,
                      summary_zh="压测、缓存、分库分表与限流。", summary_en="Load tests, caches, sharding and rate limits.",
                      created_at=made_at)]
    for number in range(COURSES - 1):
        topic_zh, topic_en = _TOPICS[number % len(_TOPICS)]
        level_zh, level_en = _LEVELS[number // len(_TOPICS) % len(_LEVELS)]
        colours = _COLOURS[number % len(_COLOURS)]
        courses.append(Course(
            slug=f"{COURSE_SLUG_PREFIX}{number:03d}", instructor_id=others[number % len(others)].id,
            title_zh=f"{topic_zh}{level_zh}", title_en=f"{topic_en} {level_en}",
            price_fen=rng.choice(PRICES_FEN), summary_zh=f"{topic_zh}{level_zh}课程。",
            summary_en=f"{topic_en}: {level_en.lower()}.", cover_from=colours[0], cover_to=colours[1],
            created_at=made_at,
        ))
    for course in courses:
        for position, (title_zh, title_en) in enumerate(_LESSONS, start=1):
            course.lessons.append(Lesson(position=position, title_zh=title_zh, title_en=title_en,
                                         body=f"{course.title_zh} · {title_zh}"))
    db.session.add_all(courses)
    db.session.flush()
    for course in courses[1:]:
        if rng.random() < 0.08:  # a flagship course with its own rate
            rules.append(CommissionRule(course_id=course.id, rate_bps=8000, effective_from=made_at,
                                        reason="flagship course", created_at=made_at))
        if rng.random() < 0.1:  # co-authored with another instructor (never the big one)
            partner = rng.choice([i for i in others if i.id != course.instructor_id])
            lead_weight, partner_weight = rng.choice(((1, 1), (2, 1), (3, 2)))
            db.session.add(CourseAuthor(course_id=course.id, instructor_id=course.instructor_id, weight=lead_weight))
            db.session.add(CourseAuthor(course_id=course.id, instructor_id=partner.id, weight=partner_weight))
    db.session.add_all(rules)
    db.session.add(Coupon(code=PERCENT_COUPON, kind="percent", percent_off_bps=1000, per_user_limit=100,
                          created_at=made_at))
    db.session.add(Coupon(code=FIXED_COUPON, kind="fixed", amount_off_fen=2000, min_amount_fen=10000,
                          per_user_limit=100, created_at=made_at))
    db.session.flush()
