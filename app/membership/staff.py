"""Staff create and edit membership plans; every change is audited. Flushes, never
commits. Memberships copy the plan's terms when ordered, so an edit applies to orders
placed from now on."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from app.audit.services import record
from app.errors import ServiceError
from app.extensions import db
from app.membership.models import MembershipPlan
from app.timeutil import now

MAX_PERIOD_DAYS = 3660


class PlanEditError(ServiceError):
    """An edit that breaks a rule; ``message`` is for the staff member (in English)."""


@dataclass(frozen=True)
class PlanValues:
    title_zh: str
    title_en: str
    price_fen: int
    period_days: int
    pool_bps: int
    is_active: bool


def _snapshot(plan: MembershipPlan) -> dict[str, object]:
    return {name: getattr(plan, name) for name in PlanValues.__dataclass_fields__}


def save_plan(plan_id: int | None, values: PlanValues, staff_id: int, reason: str) -> int:
    """Create (``plan_id`` None) or edit a membership plan; returns its id."""
    text = " ".join((reason or "").split())
    if not text:
        raise PlanEditError("reason_required", "Please give a reason.")
    plan = db.session.get(MembershipPlan, plan_id) if plan_id is not None else MembershipPlan(created_at=now())
    if plan is None:
        raise PlanEditError("not_found", "No such plan.")
    if not values.title_zh.strip() or not values.title_en.strip():
        raise PlanEditError("title_required", "A plan needs both titles.")
    if values.price_fen <= 0:
        raise PlanEditError("price", "The price must be above zero.")
    if not 0 < values.period_days <= MAX_PERIOD_DAYS:
        raise PlanEditError("period_days", f"A period is 1 to {MAX_PERIOD_DAYS} days.")
    if not 0 <= values.pool_bps <= 10000:
        raise PlanEditError("pool_bps", "The instructor pool is 0 % to 100 % of the price net of tax.")
    before = _snapshot(plan) if plan_id is not None else None
    for name, value in asdict(values).items():
        setattr(plan, name, value.strip() if isinstance(value, str) else value)
    if plan_id is None:
        db.session.add(plan)
    db.session.flush()
    after = _snapshot(plan)
    if before == after:
        raise PlanEditError("unchanged", "Nothing was changed.")
    record(staff_id, "membership_plan.create" if plan_id is None else "membership_plan.edit", "membership_plan",
           plan.id, text, before, after)
    return plan.id
