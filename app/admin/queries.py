"""Read-only queries behind the back-office pages: the dashboard figures, the order
and refund detail pages and the reconciliation queue. Nothing here writes."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import and_, case, func, or_, select

from app.accounts.models import User
from app.admin.formatting import beijing_day_bounds
from app.audit.models import AuditEntry
from app.checkout.models import Order
from app.config import CHANNELS
from app.extensions import db
from app.ledger.models import JournalEntry
from app.payments.health import HealthView, health_report
from app.payments.models import InboxNotification, OrphanPayment, PaymentAttempt, Refund, RejectedNotification
from app.payments.refund_workflow import RefundPolicy, refund_policy
from app.payments.registry import enabled_channels
from app.reconciliation.matching import bill_days_due
from app.reconciliation.models import Discrepancy, ReconciliationRun
from app.timeutil import beijing, now

PENDING_REFUND_STATUSES = ("requested", "awaiting_finance")
# A claimed day whose run has not finished this long after is stuck (its job was lost,
# or keeps dying): the periodic round re-claims it every half hour meanwhile.
RUN_STALLED_AFTER = timedelta(hours=1)
REJECTED_CALLBACKS_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Dashboard:
    day: str  # the Beijing calendar day, YYYY-MM-DD
    paid_orders: int
    revenue_fen: int
    pending_refunds: int
    unhealthy_channels: tuple[str, ...]
    channels: tuple[HealthView, ...]
    open_discrepancies: int  # reconciliation findings no one has resolved yet
    stalled_runs: int  # channel-days of the lookback not reconciled: failed, or claimed long ago
    rejected_callbacks: tuple[tuple[str, int], ...]  # (channel, refused in the last 24 hours), every channel


def dashboard() -> Dashboard:
    """Today's figures (Beijing day). Revenue is what the orders paid today charged,
    whatever happened to them afterwards; refunds show in the pending count and the
    ledger. Failed jobs are counted by the view (they live in Redis, not here). Top-ups of
    the prepaid balance are not revenue (the balance is owed to the learner): the course
    and membership orders it pays for are."""
    today = beijing(now()).date()
    start, end = beijing_day_bounds(today)
    paid_today = (Order.paid_at >= start, Order.paid_at < end, Order.kind != "topup")
    paid_orders, revenue = db.session.execute(
        select(func.count(Order.id), func.coalesce(func.sum(Order.total_fen), 0)).where(*paid_today)
    ).one()
    pending = db.session.scalar(
        select(func.count(Refund.id)).where(Refund.status.in_(PENDING_REFUND_STATUSES))
    ) or 0
    channels = tuple(health_report(enabled_channels()))
    return Dashboard(
        day=today.isoformat(), paid_orders=paid_orders, revenue_fen=int(revenue),
        pending_refunds=pending,
        unhealthy_channels=tuple(view.channel for view in channels if not view.healthy),
        channels=channels,
        open_discrepancies=open_discrepancy_count(),
        stalled_runs=stalled_run_count(now()),
        rejected_callbacks=rejected_callback_counts(now()),
    )


def open_discrepancy_count() -> int:
    return db.session.scalar(select(func.count(Discrepancy.id)).where(Discrepancy.status == "open")) or 0


def rejected_callback_counts(moment: datetime) -> tuple[tuple[str, int], ...]:
    """Callbacks refused in the `REJECTED_CALLBACKS_WINDOW` before ``moment``, per channel
    we know (a channel switched off for payments can still be sent forgeries)."""
    counted = dict(db.session.execute(
        select(RejectedNotification.channel, func.count(RejectedNotification.id))
        .where(RejectedNotification.received_at > moment - REJECTED_CALLBACKS_WINDOW)
        .group_by(RejectedNotification.channel)
    ).all())
    return tuple((channel, counted.get(channel, 0)) for channel in CHANNELS)


def stalled_run_count(moment: datetime) -> int:
    """The channel-days the periodic round should have reconciled by ``moment`` (the
    lookback, enabled channels) whose run failed, or was claimed over
    `RUN_STALLED_AFTER` ago and has not finished."""
    config = current_app.config
    days = bill_days_due(beijing(moment), config["RECONCILE_AFTER_HOUR"], config["RECONCILE_LOOKBACK_DAYS"])
    channels = enabled_channels()
    if not days or not channels:
        return 0
    return db.session.scalar(select(func.count(ReconciliationRun.id)).where(
        ReconciliationRun.channel.in_(channels), ReconciliationRun.bill_date.in_(days),
        or_(ReconciliationRun.status == "failed",
            and_(ReconciliationRun.status == "pending", ReconciliationRun.created_at < moment - RUN_STALLED_AFTER)),
    )) or 0


def emails(user_ids: set[int | None]) -> dict[int, str]:
    ids = {user_id for user_id in user_ids if user_id is not None}
    if not ids:
        return {}
    return {user_id: email for user_id, email in db.session.execute(select(User.id, User.email).where(User.id.in_(ids)))}


@dataclass(frozen=True)
class OrderDetail:
    order: Order
    learner_email: str
    attempts: list[PaymentAttempt]
    notifications: list[InboxNotification]
    refunds: list[Refund]
    orphans: list[OrphanPayment]
    entries: list[JournalEntry]


def order_detail(order_id: int) -> OrderDetail | None:
    order = db.session.get(Order, order_id)
    if order is None:
        return None
    attempts = list(db.session.scalars(
        select(PaymentAttempt).where(PaymentAttempt.order_id == order.id).order_by(PaymentAttempt.id)
    ))
    attempt_ids = [attempt.id for attempt in attempts]
    trade_nos = [attempt.out_trade_no for attempt in attempts]
    notifications = list(db.session.scalars(
        select(InboxNotification)
        .where(or_(InboxNotification.attempt_id.in_(attempt_ids), InboxNotification.out_trade_no.in_(trade_nos)))
        .order_by(InboxNotification.id)
    )) if attempts else []
    return OrderDetail(
        order=order,
        learner_email=emails({order.user_id}).get(order.user_id, ""),
        attempts=attempts,
        notifications=notifications,
        refunds=list(db.session.scalars(select(Refund).where(Refund.order_id == order.id).order_by(Refund.id))),
        orphans=list(db.session.scalars(
            select(OrphanPayment).where(OrphanPayment.order_id == order.id).order_by(OrphanPayment.id)
        )),
        entries=list(db.session.scalars(
            select(JournalEntry).where(JournalEntry.order_id == order.id).order_by(JournalEntry.id)
        )),
    )


@dataclass(frozen=True)
class RefundDetail:
    refund: Refund
    order: Order
    policy: RefundPolicy
    people: dict[int, str]  # user id -> e-mail, for requester and approvers
    history: list[AuditEntry]
    large: bool


def refund_detail(refund_id: int, large_refund_fen: int) -> RefundDetail | None:
    refund = db.session.get(Refund, refund_id)
    if refund is None:
        return None
    order = db.session.get(Order, refund.order_id)
    assert order is not None  # a foreign key
    history = list(db.session.scalars(
        select(AuditEntry)
        .where(AuditEntry.target_type == "refund", AuditEntry.target_id == str(refund.id))
        .order_by(AuditEntry.id)
    ))
    return RefundDetail(
        refund=refund,
        order=order,
        policy=refund_policy(order.id),
        people=emails({refund.requested_by, refund.first_approved_by, refund.decided_by, order.user_id}),
        history=history,
        large=refund.amount_fen > large_refund_fen,
    )


@dataclass(frozen=True)
class DiscrepancyFilters:
    """The reconciliation queue's filters; None shows every value."""

    channel: str | None = None
    bill_date: date | None = None
    kind: str | None = None
    status: str | None = None

    def as_args(self) -> dict[str, str]:
        """The filters as query-string arguments (for the pager's links)."""
        values = {"channel": self.channel, "date": self.bill_date.isoformat() if self.bill_date else None,
                  "kind": self.kind, "status": self.status}
        return {name: value for name, value in values.items() if value}


def discrepancy_page(filters: DiscrepancyFilters, page: int, per_page: int) -> tuple[list[Discrepancy], bool]:
    """One page of the queue, open ones first, then the latest days; and whether more follow."""
    query = select(Discrepancy)
    if filters.channel:
        query = query.where(Discrepancy.channel == filters.channel)
    if filters.bill_date:
        query = query.where(Discrepancy.bill_date == filters.bill_date)
    if filters.kind:
        query = query.where(Discrepancy.kind == filters.kind)
    if filters.status:
        query = query.where(Discrepancy.status == filters.status)
    rows = list(db.session.scalars(
        query.order_by(case((Discrepancy.status == "open", 0), else_=1), Discrepancy.bill_date.desc(),
                       Discrepancy.id.desc())
        .offset((page - 1) * per_page).limit(per_page + 1)
    ))
    return rows[:per_page], len(rows) > per_page


def recent_runs(limit: int) -> list[ReconciliationRun]:
    return list(db.session.scalars(
        select(ReconciliationRun).order_by(ReconciliationRun.bill_date.desc(), ReconciliationRun.channel).limit(limit)
    ))


@dataclass(frozen=True)
class DiscrepancyDetail:
    discrepancy: Discrepancy
    attempt: PaymentAttempt | None
    refund: Refund | None
    order: Order | None
    run: ReconciliationRun | None
    people: dict[int, str]
    history: list[AuditEntry]


def discrepancy_detail(discrepancy_id: int) -> DiscrepancyDetail | None:
    row = db.session.get(Discrepancy, discrepancy_id)
    if row is None:
        return None
    attempt = db.session.get(PaymentAttempt, row.attempt_id) if row.attempt_id is not None else None
    refund = db.session.get(Refund, row.refund_id) if row.refund_id is not None else None
    run = db.session.scalar(select(ReconciliationRun).where(
        ReconciliationRun.channel == row.channel, ReconciliationRun.bill_date == row.bill_date))
    return DiscrepancyDetail(
        discrepancy=row,
        attempt=attempt,
        refund=refund,
        order=db.session.get(Order, attempt.order_id) if attempt is not None else None,
        run=run,
        people=emails({row.resolved_by}),
        history=list(db.session.scalars(
            select(AuditEntry)
            .where(AuditEntry.target_type == "discrepancy", AuditEntry.target_id == str(row.id))
            .order_by(AuditEntry.id)
        )),
    )
