"""The renewal checkout: a page naming the renewal price and period, and the POST that
places the renewal order (committed), then asks the channel for its QR code."""
from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.cart.pricing import PriceLine, quote
from app.cart.services import tax_rate
from app.checkout.forms import ChannelForm
from app.checkout.models import Order
from app.checkout.services import CheckoutError
from app.catalog.models import Course
from app.extensions import db
from app.payments.precreate import issue_qr
from app.payments.registry import channel_options
from app.renewal import ordering, services

bp = Blueprint("renewal", __name__)


def _course_or_404(slug: str) -> Course:
    course = db.session.scalar(select(Course).where(Course.slug == slug, Course.is_published))
    if course is None:
        abort(404)
    return course


@bp.route("/courses/<slug>/renew", methods=["GET", "POST"])
@login_required
def renew(slug: str) -> str | Response:
    course = _course_or_404(slug)
    form = ChannelForm()
    try:
        ordering.renewable_course(current_user.id, course.id)
        if form.validate_on_submit():
            placed = ordering.place_renewal(current_user.id, course.id, form.channel.data)
            order = db.session.get(Order, placed.order_id)
            order_no, subject = order.order_no, order.lines[0].title
            db.session.commit()
            if placed.new_attempt_id is not None:
                issue_qr(placed.new_attempt_id, subject)
            return redirect(url_for("checkout.pay", order_no=order_no))
    except CheckoutError as refusal:
        db.session.rollback()
        flash(str(refusal.message), "error")
        return redirect(url_for("catalog.course", slug=slug))
    if form.is_submitted():
        flash(_("Choose a payment method."), "error")
    enrollment = services.held_enrollment(current_user.id, course.id)
    total_fen = quote([PriceLine(course.id, services.renewal_price_fen(course))], tax_rate()).total_fen
    return render_template(
        "renewal/renew.html", course=course, enrollment=enrollment, total_fen=total_fen,
        expired=services.is_expired(enrollment), form=form, channels=channel_options(total_fen),
    )
