"""Who may do what in the back office: the one table the views and the role-matrix
test both read (deny by default).

``PERMISSIONS`` says which roles may open a view at all (keyed by the view's endpoint,
which is also its URL segment under /admin). ``ACTIONS`` says which roles may take a
named action in a view; an action missing here is allowed to nobody, so the
create / edit / delete of money rows is refused to every role, admins included.
"""
from __future__ import annotations

from app.accounts.models import STAFF_ROLES

STAFF = frozenset(STAFF_ROLES)
SUPPORT_AND_ADMIN = frozenset({"support", "admin"})
FINANCE_AND_ADMIN = frozenset({"finance", "admin"})
ADMIN_ONLY = frozenset({"admin"})

PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": STAFF,  # the dashboard (the admin index page)
    "order": STAFF,
    "attempt": STAFF,
    "inbox": STAFF,
    "refund": STAFF,
    "orphan": STAFF,
    "rejected": STAFF,
    "channel_health": STAFF,
    "audit": STAFF,
    "coupon": STAFF,
    "course": STAFF,
    "instructor": STAFF,
    "failed_jobs": STAFF,
    # Alert episodes: what the dashboard and the admins' e-mails said, and when.
    "alert": STAFF,
    "user": ADMIN_ONLY,
    "commission_rule": STAFF,
    # Payouts show where money goes and open the bank file; statements are instructors'
    # earnings in full: finance's work, not support's.
    "payout": FINANCE_AND_ADMIN,
    "statement": FINANCE_AND_ADMIN,
    # Everyone on staff sees what the bills and our records disagree on (support hears
    # of a missing payment from the learner first); finance settles it.
    "reconciliation": STAFF,
    # Invoice requests carry learners' tax ids: support reads them, finance decides.
    "invoice": STAFF,
    # Receipts say what the learner was told of each payment and refund: whoever sees
    # the orders sees them too.
    "receipt": STAFF,
    # Who was mailed what, and why a message failed: support answers learners about it.
    "outbox": SUPPORT_AND_ADMIN,
    # Platform events: endpoints hold signing secrets (admins); the delivery log is
    # support's too, who hear first when the LMS missed a purchase.
    "platform_endpoint": ADMIN_ONLY,
    "platform_delivery": SUPPORT_AND_ADMIN,
    # What is sold besides single courses: everyone on staff reads it (learners ask);
    # prices are finance's to set. Each month's membership pool is instructors' earnings.
    "bundle": STAFF,
    "membership_plan": STAFF,
    "membership_pool": FINANCE_AND_ADMIN,
    # Payment analytics: how payments and the channels perform, read by finance and admins.
    "analytics": FINANCE_AND_ADMIN,
}

ACTIONS: dict[tuple[str, str], frozenset[str]] = {
    ("inbox", "replay"): SUPPORT_AND_ADMIN,
    # Anyone on staff may give the first approval or reject; the refund service also
    # enforces that only finance / admin, and not the first approver, give the second.
    ("refund", "approve"): STAFF,
    ("refund", "reject"): STAFF,
    ("refund", "retry"): STAFF,
    ("refund", "second_approval"): FINANCE_AND_ADMIN,
    ("coupon", "create"): FINANCE_AND_ADMIN,
    ("coupon", "edit"): FINANCE_AND_ADMIN,
    ("course", "edit"): ADMIN_ONLY,
    ("instructor", "edit"): FINANCE_AND_ADMIN,
    ("user", "edit"): ADMIN_ONLY,  # the role change form
    ("user", "reset_mfa"): ADMIN_ONLY,  # a staff member's second factor (not one's own)
    ("failed_jobs", "requeue"): ADMIN_ONLY,
    # Instructor earnings: every change here moves or decides money. The earnings
    # services check the payout and adjustment roles again.
    ("commission_rule", "create"): FINANCE_AND_ADMIN,
    ("commission_rule", "withdraw"): FINANCE_AND_ADMIN,
    ("course", "authors"): FINANCE_AND_ADMIN,
    ("instructor", "adjust"): FINANCE_AND_ADMIN,
    ("payout", "create_batch"): FINANCE_AND_ADMIN,
    ("payout", "export_batch"): FINANCE_AND_ADMIN,
    ("payout", "mark_paid"): FINANCE_AND_ADMIN,
    ("payout", "mark_failed"): FINANCE_AND_ADMIN,
    # Daily reconciliation; the reconciliation service checks the roles again.
    ("reconciliation", "resolve"): FINANCE_AND_ADMIN,
    ("reconciliation", "ask_channel"): FINANCE_AND_ADMIN,
    ("reconciliation", "run"): FINANCE_AND_ADMIN,
    # Invoices; the invoice service checks the roles again.
    ("invoice", "issue"): FINANCE_AND_ADMIN,
    ("invoice", "reject"): FINANCE_AND_ADMIN,
    ("invoice", "red_letter"): FINANCE_AND_ADMIN,
    ("outbox", "resend"): SUPPORT_AND_ADMIN,
    ("platform_endpoint", "create"): ADMIN_ONLY,
    ("platform_endpoint", "toggle"): ADMIN_ONLY,
    ("platform_endpoint", "rotate_secret"): ADMIN_ONLY,
    ("platform_endpoint", "reveal_secret"): ADMIN_ONLY,
    ("platform_delivery", "resend"): SUPPORT_AND_ADMIN,
    ("bundle", "create"): FINANCE_AND_ADMIN,
    ("bundle", "edit"): FINANCE_AND_ADMIN,
    ("membership_plan", "create"): FINANCE_AND_ADMIN,
    ("membership_plan", "edit"): FINANCE_AND_ADMIN,
}


def may_view(role: str | None, view: str) -> bool:
    return role is not None and role in PERMISSIONS.get(view, frozenset())


def may(role: str | None, view: str, action: str) -> bool:
    """Whether ``role`` may take ``action`` in ``view``; needs the view itself too."""
    return may_view(role, view) and role in ACTIONS.get((view, action), frozenset())
