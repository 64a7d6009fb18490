"""The e-mails the follow-ups announce: who gets which message, in which language, and
under which key. Flush only (each ends in `services.queue_email`).

A message is rendered when it is queued, from ``templates/mail/<kind>.txt``, so what
staff see in the outbox is exactly what went out, and a resend sends the same words.
The recipient's language is the one the site knows: the visitor's own (their language
switch or browser) when the recipient is the one whose request set the event off,
otherwise DEFAULT_LOCALE (Chinese unless configured).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from flask import current_app, has_request_context, render_template, request
from flask_babel import force_locale, gettext
from flask_login import current_user
from sqlalchemy import select

from app.accounts.models import User
from app.catalog.models import Course, Enrollment, Instructor
from app.checkout.models import Order, OrderLine
from app.earnings.models import Statement
from app.extensions import db
from app.i18n import BACK_OFFICE_PREFIX, select_locale
from app.mail.services import queue_email
from app.payments.models import Refund, RefundLine
from app.timeutil import beijing


def recipient_locale(user_id: int) -> str:
    """The language to write to ``user_id`` in (see the module docstring)."""
    if (has_request_context() and not request.path.startswith(BACK_OFFICE_PREFIX)
            and current_user.is_authenticated and current_user.id == user_id):
        return select_locale()
    return current_app.config["DEFAULT_LOCALE"]


def site_link(endpoint: str, **values: Any) -> str:
    """An absolute link to one of our pages, built without a request (jobs send mail)."""
    adapter = current_app.url_map.bind("localhost", script_name="/")
    return current_app.config["PUBLIC_BASE_URL"] + adapter.build(endpoint, values)


def course_title(course: Course, locale: str) -> str:
    return course.title_en if locale == "en" else course.title_zh


def _queue(key: str, kind: str, to: str, name: str, locale: str, subject: Callable[[], str],
           **context: Any) -> int | None:
    with force_locale(locale):
        subject_text = subject()
        body = render_template(f"mail/{kind}.txt", name=name, locale=locale, **context)
    return queue_email(key, kind, to, subject_text, body, locale)


def order_paid(order_id: int) -> int | None:
    """The order confirmation. It runs in every payment's job: the learner's address and
    the courses' titles come in one query, whatever the number of lines."""
    order = db.session.get(Order, order_id)
    if order is None:
        return None
    rows = db.session.execute(
        select(User.email, User.display_name, Course.title_zh, Course.title_en)
        .join(Order, Order.user_id == User.id)
        .outerjoin(OrderLine, OrderLine.order_id == Order.id)  # a top-up has no lines
        .outerjoin(Course, Course.id == OrderLine.course_id)
        .where(Order.id == order_id)
        .order_by(OrderLine.id)
    ).all()
    if not rows:
        return None
    email, name = rows[0].email, rows[0].display_name
    locale = recipient_locale(order.user_id)
    titles = [row.title_en if locale == "en" else row.title_zh for row in rows if row.title_zh is not None]
    return _queue(
        f"order-paid:{order.id}", "order_paid", email, name, locale,
        lambda: (gettext("Top-up %(order_no)s is paid", order_no=order.order_no) if order.kind == "topup"
                 else gettext("Order %(order_no)s is paid", order_no=order.order_no)),
        order=order, titles=titles, link=site_link("checkout.pay", order_no=order.order_no),
    )


def refund_status(refund_id: int, status: str) -> int | None:
    """One of the refund's news: ``requested``, ``rejected``, ``succeeded``, ``failed``."""
    refund = db.session.get(Refund, refund_id)
    if refund is None:
        return None
    order = db.session.get(Order, refund.order_id)
    user = db.session.get(User, order.user_id)
    locale = recipient_locale(user.id)
    subjects = {
        "requested": lambda: gettext("We received your refund request for order %(order_no)s",
                                     order_no=order.order_no),
        "rejected": lambda: gettext("Your refund request for order %(order_no)s was not approved",
                                    order_no=order.order_no),
        "succeeded": lambda: gettext("Your refund for order %(order_no)s is on its way",
                                     order_no=order.order_no),
        "failed": lambda: gettext("Your refund for order %(order_no)s is taking longer",
                                  order_no=order.order_no),
    }
    titles = [row.title_en if locale == "en" else row.title_zh for row in db.session.execute(
        select(Course.title_zh, Course.title_en)
        .join(OrderLine, OrderLine.course_id == Course.id)
        .join(RefundLine, RefundLine.order_line_id == OrderLine.id)
        .where(RefundLine.refund_id == refund.id)
        .order_by(RefundLine.id)
    )]
    return _queue(
        f"refund-{status}:{refund.id}", f"refund_{status}", user.email, user.display_name, locale, subjects[status],
        order=order, refund=refund, titles=titles, link=site_link("checkout.my_orders"),
    )


def access_ending(enrollment_id: int, ends_at: datetime) -> int | None:
    """The renewal reminder; one per enrollment and end time (an extension that moves
    the end gets a reminder of its own)."""
    enrollment = db.session.get(Enrollment, enrollment_id)
    if enrollment is None:
        return None
    user = db.session.get(User, enrollment.user_id)
    locale = recipient_locale(user.id)
    course = enrollment.course
    title = course_title(course, locale)
    return _queue(
        f"access-ending:{enrollment.id}:{ends_at:%Y%m%d%H%M}", "access_ending", user.email,
        user.display_name, locale,
        lambda: gettext("Your access to %(title)s ends soon", title=title),
        title=title, ends_at=beijing(ends_at).strftime("%Y-%m-%d %H:%M"),
        link=site_link("catalog.course", slug=course.slug),
    )


def statement_ready(statement_id: int) -> int | None:
    """To the instructor's own account; an instructor without one gets no e-mail."""
    statement = db.session.get(Statement, statement_id)
    if statement is None:
        return None
    instructor = db.session.get(Instructor, statement.instructor_id)
    if instructor is None or instructor.user_id is None:
        return None
    user = db.session.get(User, instructor.user_id)
    locale = recipient_locale(user.id)
    return _queue(
        f"statement-ready:{statement.id}", "statement_ready", user.email, user.display_name, locale,
        lambda: gettext("Your statement for %(period)s is ready", period=statement.period),
        statement=statement, link=site_link("earnings.statement", period=statement.period),
    )
