"""The Flask-Admin back office at /admin (DESIGN.md §1, §10).

`init_admin` builds a fresh `Admin` and fresh views for each app. Flask-Admin 2.2.1
cannot share one module-level `Admin` between apps: `Admin.init_app` keeps the app on
the instance (``self.app``), and each view keeps the blueprint and URL it built for the
last app it was registered with (``view.blueprint``, ``view.url``, ``view.admin``), so a
second app (tests make one per test) would rebind the first one's views.
"""
from __future__ import annotations

from flask import Flask
from flask_admin import Admin

from app.accounts.models import User
from app.admin.alert_views import AlertHistoryView
from app.admin.analytics_views import AnalyticsView
from app.admin.catalog_views import CouponView, UserView
from app.admin.dashboard import DashboardView
from app.admin.earnings_views import (CommissionRuleView, CourseWithAuthorsView, InstructorWithEarningsView,
                                      StatementView)
from app.admin.invoice_views import InvoiceView
from app.admin.jobs_view import FailedJobsView
from app.admin.mail_views import OutboxView
from app.admin.offer_views import BundleView, MembershipPlanView, MembershipPoolView
from app.admin.money_views import (AttemptView, AuditView, ChannelHealthView, InboxView, OrderView,
                                   OrphanView, ReceiptView, RejectedView)
from app.admin.payout_views import PayoutView
from app.admin.platform_event_views import PlatformDeliveryView, PlatformEndpointView
from app.admin.reconciliation_views import ReconciliationView
from app.admin.refund_views import RefundView
from app.alerts.models import AlertEpisode
from app.audit.models import AuditEntry
from app.bundles.models import Bundle
from app.cart.models import Coupon
from app.catalog.models import Course, Instructor
from app.checkout.models import Order
from app.earnings.models import CommissionRule, Statement
from app.extensions import db
from app.invoices.models import InvoiceRequest
from app.mail.models import OutboxMessage
from app.membership.models import MembershipPlan, MembershipPool
from app.payments.models import (InboxNotification, OrphanPayment, PaymentAttempt, Refund,
                                 RejectedNotification)
from app.platform_events.models import PlatformDelivery, PlatformEndpoint
from app.receipts.models import Receipt

MONEY = "Money"
CATALOG = "Catalog"
EARNINGS = "Earnings"
OPERATIONS = "Operations"


def init_admin(app: Flask) -> Admin:
    """Mount the back office; each view's endpoint is its key in `PERMISSIONS`."""
    admin = Admin(app, name="CourseCashier", url="/admin",
                  index_view=DashboardView(name="Dashboard", endpoint="admin", url="/admin"))
    admin.add_views(
        OrderView(Order, db, name="Orders", endpoint="order", category=MONEY),
        AttemptView(PaymentAttempt, db, name="Payment attempts", endpoint="attempt", category=MONEY),
        RefundView(Refund, db, name="Refunds", endpoint="refund", category=MONEY),
        InboxView(InboxNotification, db, name="Notification inbox", endpoint="inbox", category=MONEY),
        OrphanView(OrphanPayment, db, name="Orphan payments", endpoint="orphan", category=MONEY),
        RejectedView(RejectedNotification, db, name="Rejected notifications", endpoint="rejected",
                     category=MONEY),
        ReconciliationView(name="Reconciliation", endpoint="reconciliation", category=MONEY),
        AnalyticsView(name="Payment analytics", endpoint="analytics", category=MONEY),
        InvoiceView(InvoiceRequest, db, name="Invoices", endpoint="invoice", category=MONEY),
        ReceiptView(Receipt, db, name="Receipts", endpoint="receipt", category=MONEY),
        CouponView(Coupon, db, name="Coupons", endpoint="coupon", category=CATALOG),
        # Courses and instructors with their earnings pages (co-authors; balances, adjustments).
        CourseWithAuthorsView(Course, db, name="Courses", endpoint="course", category=CATALOG),
        InstructorWithEarningsView(Instructor, db, name="Instructors", endpoint="instructor", category=CATALOG),
        BundleView(Bundle, db, name="Bundles", endpoint="bundle", category=CATALOG),
        MembershipPlanView(MembershipPlan, db, name="Membership plans", endpoint="membership_plan",
                           category=CATALOG),
        MembershipPoolView(MembershipPool, db, name="Membership pools", endpoint="membership_pool",
                           category=EARNINGS),
        CommissionRuleView(CommissionRule, db, name="Commission rules", endpoint="commission_rule",
                           category=EARNINGS),
        PayoutView(name="Payouts", endpoint="payout", category=EARNINGS),
        StatementView(Statement, db, name="Statements", endpoint="statement", category=EARNINGS),
        ChannelHealthView(name="Channel health", endpoint="channel_health", category=OPERATIONS),
        AlertHistoryView(AlertEpisode, db, name="Alert history", endpoint="alert", category=OPERATIONS),
        FailedJobsView(name="Failed jobs", endpoint="failed_jobs", category=OPERATIONS),
        OutboxView(OutboxMessage, db, name="E-mail outbox", endpoint="outbox", category=OPERATIONS),
        PlatformEndpointView(PlatformEndpoint, db, name="Platform endpoints", endpoint="platform_endpoint",
                             category=OPERATIONS),
        PlatformDeliveryView(PlatformDelivery, db, name="Platform event deliveries",
                             endpoint="platform_delivery", category=OPERATIONS),
        AuditView(AuditEntry, db, name="Audit log", endpoint="audit", category=OPERATIONS),
        UserView(User, db, name="Users and roles", endpoint="user", category=OPERATIONS),
    )
    return admin
