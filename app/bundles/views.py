from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from app.accounts.forms import EmptyForm
from app.bundles.services import parts_of, published_bundle
from app.cart import services as cart_services
from app.catalog.services import owned_course_ids
from app.extensions import db

bp = Blueprint("bundles", __name__, url_prefix="/bundles")


@bp.route("/<slug>")
def bundle(slug: str) -> str:
    bundle = published_bundle(slug)
    if bundle is None:
        abort(404)
    owned = owned_course_ids(current_user.id) if current_user.is_authenticated else set()
    return render_template("bundles/bundle.html", bundle=bundle, parts=parts_of(bundle),
                           owned=owned, form=EmptyForm())


@bp.route("/<slug>/cart", methods=["POST"])
@login_required
def add_to_cart(slug: str) -> Response:
    bundle = published_bundle(slug)
    if bundle is None:
        abort(404)
    if EmptyForm().validate_on_submit():
        try:
            cart_services.add_bundle(current_user.id, bundle.id)
        except cart_services.CartError as error:
            db.session.rollback()
            flash(error.message, "error")
            return redirect(url_for("bundles.bundle", slug=slug))
        db.session.commit()
        flash(_("The bundle is in your cart."), "success")
    return redirect(url_for("cart.view"))
