from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.accounts.forms import EmptyForm
from app.bundles.services import published_bundles
from app.catalog import services
from app.catalog.models import Course, Lesson
from app.extensions import db
from app.membership.services import is_member
from app.renewal.services import ends_soon, held_enrollment, is_expired

bp = Blueprint("catalog", __name__)


def _owned() -> set[int]:
    return services.owned_course_ids(current_user.id) if current_user.is_authenticated else set()


def _member() -> bool:
    """A membership running now opens every published course (app/membership)."""
    return current_user.is_authenticated and is_member(current_user.id)


@bp.route("/")
def index() -> str:
    expired = services.expired_course_ids(current_user.id) if current_user.is_authenticated else set()
    return render_template(
        "catalog/index.html", courses=services.published_courses(), owned=_owned(), form=EmptyForm(),
        expired=expired, bundles=published_bundles(), member=_member(),
    )


@bp.route("/courses/<slug>")
def course(slug: str) -> str:
    course = db.session.scalar(select(Course).where(Course.slug == slug, Course.is_published))
    if course is None:
        abort(404)
    enrollment = held_enrollment(current_user.id, course.id) if current_user.is_authenticated else None
    return render_template(
        "catalog/course.html", course=course, owned=enrollment is not None, form=EmptyForm(),
        enrollment=enrollment, expired=enrollment is not None and is_expired(enrollment),
        ending=enrollment is not None and ends_soon(enrollment), member=_member(),
    )


@bp.route("/courses/<slug>/lessons/<int:position>")
def lesson(slug: str, position: int) -> str | Response:
    course = db.session.scalar(select(Course).where(Course.slug == slug))
    if course is None:
        abort(404)
    lesson = db.session.scalar(
        select(Lesson).where(Lesson.course_id == course.id, Lesson.position == position)
    )
    if lesson is None:
        abort(404)
    enrollment = held_enrollment(current_user.id, course.id) if current_user.is_authenticated else None
    member = course.is_published and _member()  # a running membership opens every course
    if enrollment is None and not member:
        flash(_("Buy this course to open its lessons."), "info")
        return redirect(url_for("catalog.course", slug=slug))
    if not member and is_expired(enrollment):
        flash(_("Your access to this course has ended. Renew it to study again."), "error")
        return redirect(url_for("renewal.renew", slug=slug))
    services.record_lesson_view(current_user.id, lesson)
    db.session.commit()
    return render_template("catalog/lesson.html", course=course, lesson=lesson)


@bp.route("/my/courses")
@login_required
def my_courses() -> str:
    enrollments = services.my_enrollments(current_user.id)
    return render_template(
        "catalog/my_courses.html", enrollments=enrollments,
        expired={e.id for e in enrollments if is_expired(e)},
        ending=[e for e in enrollments if ends_soon(e)],
    )
