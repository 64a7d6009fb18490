"""`flask seed-demo`: a realistic catalog for the embedded mode. Safe to run twice."""
from __future__ import annotations

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from app.accounts.services import create_user, find_user
from app.bundles.models import Bundle
from app.cart.models import Coupon
from app.catalog import demo_data
from app.catalog.models import Course, Instructor, Lesson
from app.earnings.rules import add_rule
from app.extensions import db
from app.membership.models import MembershipPlan


def seed_demo() -> bool:
    """Load the demo data unless a catalog exists; returns whether it loaded anything."""
    if db.session.scalar(select(Course.id).limit(1)) is not None:
        return False
    instructors = []
    for spec in demo_data.INSTRUCTORS:
        values = dict(spec)
        rate_bps = values.pop("rate_bps")
        instructor = Instructor(**values)
        db.session.add(instructor)
        db.session.flush()
        add_rule(rate_bps, None, None, "demo catalog", instructor_id=instructor.id)
        instructors.append(instructor)
    courses: dict[str, Course] = {}
    for slug, who, title_zh, title_en, price, summary_zh, summary_en, colours in demo_data.COURSES:
        course = Course(
            slug=slug, instructor_id=instructors[who].id, title_zh=title_zh, title_en=title_en,
            price_fen=price, summary_zh=summary_zh, summary_en=summary_en,
            cover_from=colours[0], cover_to=colours[1],
        )
        course.access_days, course.renewal_price_fen = demo_data.ACCESS_PERIODS.get(slug, (None, None))
        for position, (lesson_zh, lesson_en) in enumerate(demo_data.LESSON_TITLES, start=1):
            course.lessons.append(
                Lesson(
                    position=position, title_zh=lesson_zh, title_en=lesson_en,
                    body=f"{title_zh} · {lesson_zh}\n\n{title_en}: {lesson_en}. "
                    "(Placeholder lesson text for the demo catalog.)",
                )
            )
        db.session.add(course)
        courses[slug] = course
    db.session.flush()
    for spec in demo_data.COUPONS:
        values = dict(spec)
        slugs = values.pop("course_slugs", [])
        coupon = Coupon(**values)
        coupon.courses = [courses[slug] for slug in slugs]
        db.session.add(coupon)
    for slug, title_zh, title_en, price, slugs in demo_data.BUNDLES:
        db.session.add(Bundle(slug=slug, title_zh=title_zh, title_en=title_en, price_fen=price,
                              courses=[courses[course_slug] for course_slug in slugs]))
    for plan in demo_data.MEMBERSHIP_PLANS:
        db.session.add(MembershipPlan(**plan))
    email, password, name = demo_data.DEMO_LEARNER
    if find_user(email) is None:
        create_user(email, password, name)
    email, password, name = demo_data.DEMO_INSTRUCTOR
    if find_user(email) is None:
        instructors[0].user_id = create_user(email, password, name, role="instructor")
    db.session.flush()
    return True


@click.command("seed-demo")
@with_appcontext
def seed_demo_command() -> None:
    """Load the demo catalog, coupons and a demo learner."""
    loaded = seed_demo()
    db.session.commit()
    click.echo("demo data loaded" if loaded else "a catalog exists already; nothing loaded")
