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

bp = Blueprint("catalog", __name__)


def _owned() -> set[int]:
    return services.owned_course_ids(current_user.id) if current_user.is_authenticated else set()


def _member() -> bool:
    """A membership running now opens every published course (app/membership)."""
    return current_user.is_authenticated and is_member(current_user.id)


@bp.route("/")
def index() -> str:
    return render_template(
        "catalog/index.html", courses=services.published_courses(), owned=_owned(), form=EmptyForm(),
        bundles=published_bundles(), member=_member(),
    )


@bp.route("/courses/<slug>")
def course(slug: str) -> str:
    course = db.session.scalar(select(Course).where(Course.slug == slug, Course.is_published))
    if course is None:
        abort(404)
    return render_template(
        "catalog/course.html", course=course, owned=course.id in _owned(), form=EmptyForm(), member=_member()
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
    studyable = course.id in _owned() or (course.is_published and _member())
    if not current_user.is_authenticated or not studyable:
        flash(_("Buy this course to open its lessons."), "info")
        return redirect(url_for("catalog.course", slug=slug))
    services.record_lesson_view(current_user.id, lesson)
    db.session.commit()
    return render_template("catalog/lesson.html", course=course, lesson=lesson)


@bp.route("/my/courses")
@login_required
def my_courses() -> str:
    return render_template(
        "catalog/my_courses.html", enrollments=services.my_enrollments(current_user.id)
    )
