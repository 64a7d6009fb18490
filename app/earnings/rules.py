"""Revenue-share rules and co-authorship: what an instructor earns on a sale.

A sale's instructor share is ``rate × (amount − tax)``, rounded half up to the fen, then
split between a course's co-authors by their weights with largest remainder. The rate is
the rule in force when the order was placed; the order line keeps it (`OrderLineShare`).

Services flush, never commit, and audit every change in the same transaction.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from sqlalchemy import select, update

from app.audit.services import record
from app.catalog.models import Course, Instructor
from app.earnings.models import CommissionRule, CourseAuthor
from app.errors import ServiceError
from app.extensions import db
from app.money import allocate, apply_bps
from app.timeutil import now

RULE_TEXT = (
    "Share = rate × (line amount − tax), rounded half up to the fen; co-authors split it "
    "by their agreed weights (largest remainder). Channel fees are borne by the platform. "
    "分成 = 分成比例 × (订单行金额 − 税额)，四舍五入到分；合著课程按约定权重分配。渠道手续费由平台承担。"
    " Membership: each month's instructor pool is shared by the lessons members opened in each "
    "course (largest remainder); in a month without opens it stays with the platform. "
    "会员：每月分成池按会员打开各课程课时的次数分配；当月无人打开课时则归平台。"
)
MAX_REASON = 255
MAX_WEIGHT = 10000


class RuleError(ServiceError):
    """A commission rule or co-author change that is not allowed."""


@dataclass(frozen=True)
class ShareSplit:
    instructor_id: int
    weight: int
    weight_total: int
    share_fen: int


def _reason(reason: str) -> str:
    text = " ".join((reason or "").split())
    if not text:
        raise RuleError("reason_required", "Please give a reason.")
    return text[:MAX_REASON]


def _in_force(*conditions: object, at: datetime) -> CommissionRule | None:
    return db.session.scalar(
        select(CommissionRule)
        .where(*conditions, CommissionRule.effective_from <= at, CommissionRule.withdrawn_at.is_(None))
        .order_by(CommissionRule.effective_from.desc(), CommissionRule.id.desc())
        .limit(1)
    )


def rate_for(course: Course, at: datetime) -> int | None:
    """The rate in force for a sale of ``course`` placed at ``at``; None if no rule."""
    rule = _in_force(CommissionRule.course_id == course.id, at=at) or _in_force(
        CommissionRule.instructor_id == course.instructor_id, at=at
    )
    return rule.rate_bps if rule is not None else None


def authors_of(course: Course) -> list[tuple[int, int]]:
    """``(instructor_id, weight)`` of each author, in a stable order."""
    rows = db.session.scalars(
        select(CourseAuthor).where(CourseAuthor.course_id == course.id).order_by(CourseAuthor.id)
    ).all()
    if not rows:
        return [(course.instructor_id, 1)]
    return [(row.instructor_id, row.weight) for row in rows]


def split_share(net_fen: int, rate_bps: int, authors: Sequence[tuple[int, int]]) -> list[ShareSplit]:
    """The instructor share of a line net of tax, split between its authors."""
    share = apply_bps(net_fen, rate_bps)
    weights = [weight for _, weight in authors]
    total = sum(weights)
    parts = allocate(share, weights)
    return [
        ShareSplit(instructor_id, weight, total, part)
        for (instructor_id, weight), part in zip(authors, parts)
    ]


def add_rule(
    rate_bps: int,
    effective_from: datetime | None,
    staff_id: int | None,
    reason: str,
    instructor_id: int | None = None,
    course_id: int | None = None,
) -> int:
    """A new rate from ``effective_from`` on (None: from this moment), which may not lie in
    the past: orders already placed keep the rate they were sold at, and no rule reaches
    back to them."""
    text = _reason(reason)
    moment = now()
    if effective_from is None:
        effective_from = moment
    if (instructor_id is None) == (course_id is None):
        raise RuleError("scope", "A rule is either an instructor's default or one course's override.")
    if not isinstance(rate_bps, int) or not 0 <= rate_bps <= 10000:
        raise RuleError("rate_bps", "The rate is between 0 and 10000 basis points.")
    if effective_from < moment:
        raise RuleError(
            "retroactive", "A rule takes effect now or later; orders already placed keep their rate."
        )
    if instructor_id is not None and db.session.get(Instructor, instructor_id) is None:
        raise RuleError("not_found", "No such instructor.")
    if course_id is not None and db.session.get(Course, course_id) is None:
        raise RuleError("not_found", "No such course.")
    rule = CommissionRule(
        instructor_id=instructor_id,
        course_id=course_id,
        rate_bps=rate_bps,
        effective_from=effective_from,
        reason=text,
        created_by=staff_id,
        created_at=moment,
    )
    db.session.add(rule)
    db.session.flush()
    if staff_id is not None:  # None: the demo catalog or a test fixture, not a staff action
        record(staff_id, "commission_rule.add", "commission_rule", rule.id, text, None, _snapshot(rule))
    return rule.id


def withdraw_rule(rule_id: int, staff_id: int, reason: str) -> None:
    """Withdraw a rule that has not taken effect yet; one in force can only be superseded."""
    text = _reason(reason)
    moment = now()
    rule = db.session.get(CommissionRule, rule_id)
    if rule is None or rule.withdrawn_at is not None:
        raise RuleError("not_found", "No such rule, or it was already withdrawn.")
    if rule.effective_from <= moment:
        raise RuleError(
            "in_force", "This rule has taken effect; add a new rule to change the rate from now on."
        )
    before = _snapshot(rule)
    # Conditional, so two staff withdrawing at once (or the moment passing) act once.
    withdrawn = db.session.execute(
        update(CommissionRule)
        .where(CommissionRule.id == rule_id, CommissionRule.withdrawn_at.is_(None),
               CommissionRule.effective_from > moment)
        .values(withdrawn_at=moment)
        .execution_options(synchronize_session=False)
    ).rowcount
    if withdrawn != 1:
        raise RuleError("changed", "This rule changed meanwhile; reload and try again.")
    db.session.refresh(rule)
    record(staff_id, "commission_rule.withdraw", "commission_rule", rule.id, text, before, _snapshot(rule))


def set_authors(
    course_id: int, authors: Sequence[tuple[int, int]], staff_id: int | None, reason: str
) -> None:
    """Replace a course's co-authors and weights, for orders placed from now on.

    The course's own instructor must stay an author: it names whose default rate applies.
    """
    text = _reason(reason)
    course = db.session.get(Course, course_id)
    if course is None:
        raise RuleError("not_found", "No such course.")
    ids = [instructor_id for instructor_id, _ in authors]
    if len(set(ids)) != len(ids):
        raise RuleError("duplicate", "Each instructor appears once.")
    if any(not isinstance(weight, int) or not 0 < weight <= MAX_WEIGHT for _, weight in authors):
        raise RuleError("weight", f"Weights are whole numbers from 1 to {MAX_WEIGHT}.")
    if course.instructor_id not in ids:
        raise RuleError("lead", "The course's own instructor must stay an author.")
    found = set(db.session.scalars(select(Instructor.id).where(Instructor.id.in_(ids))))
    if found != set(ids):
        raise RuleError("not_found", "No such instructor.")
    before = {"authors": authors_of(course)}
    for row in db.session.scalars(select(CourseAuthor).where(CourseAuthor.course_id == course_id)):
        db.session.delete(row)
    db.session.flush()
    if len(authors) > 1:
        for instructor_id, weight in authors:
            db.session.add(CourseAuthor(course_id=course_id, instructor_id=instructor_id, weight=weight))
    db.session.flush()
    record(staff_id, "course.authors", "course", course_id, text, before, {"authors": authors_of(course)})


def _snapshot(rule: CommissionRule) -> dict[str, object]:
    return {
        "instructor_id": rule.instructor_id,
        "course_id": rule.course_id,
        "rate_bps": rule.rate_bps,
        "effective_from": rule.effective_from.isoformat(),
        "withdrawn_at": rule.withdrawn_at.isoformat() if rule.withdrawn_at else None,
    }
