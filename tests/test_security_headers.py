"""Security headers on every kind of response, and pages that work under the policy: no
inline script, event handler, ``javascript:`` URL or inline style, and nothing loaded
from another origin (app/security/headers.py, DESIGN.md §10)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.accounts.services import create_user
from app.catalog.models import Course
from app.extensions import db
from app.payments import services as payment_services
from app.security.headers import CONTENT_SECURITY_POLICY
from tests.helpers import attempt_of, checkout, login, make_course, make_learner, pay_at_emulator

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
STAFF_PASSWORD = "staff-password-1"
TEACHER_PASSWORD = "teacher-password"


class InlineCode(HTMLParser):
    """Collects what the policy would refuse or what would load from elsewhere."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=…>")
            elif name == "style":
                self.found.append(f"<{tag} style={value!r}>")
            elif (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}={value!r}>")
            elif name in {"src", "href", "action", "formaction"} and tag != "a" and _elsewhere(value):
                self.found.append(f"<{tag} {name}={value!r}> (another origin)")
        if tag == "script":
            if not values.get("src"):
                self.found.append("<script> without src")
        elif tag == "style":
            self.found.append("<style> element")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)


def _elsewhere(url: str | None) -> bool:
    return bool(url) and url.strip().lower().startswith(("http:", "https:", "//"))


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    parser.close()
    return parser.found


@dataclass(frozen=True)
class Site:
    learner: FlaskClient
    instructor: FlaskClient
    admin: FlaskClient
    anonymous: FlaskClient
    course_id: int
    paid_order_id: int
    pending_order_no: str
    attempt_id: int
    qr_path: str


@pytest.fixture
def site(app: Flask) -> Site:
    """A learner with a paid and a waiting order, the instructor who sold the course,
    an admin, and enough rejected callbacks for the back office's pager."""
    with app.app_context():
        make_learner()
        teacher = create_user("lin@example.com", TEACHER_PASSWORD, "林晓", role="instructor")
        create_user("ada@example.com", STAFF_PASSWORD, "Ada", role="admin")
        sold, waiting = make_course(10000, slug="python"), make_course(20000, slug="design")
        db.session.get(Course, sold).instructor.user_id = teacher
        for number in range(51):
            payment_services.record_rejection("alipay", "SignatureError: bad sign", "x", "127.0.0.1", f"T{number}")
        db.session.commit()
    learner = app.test_client()
    login(learner)
    paid_no = checkout(learner, [sold])
    with app.app_context():
        pay_at_emulator(app, attempt_of(paid_no).qr_code)
        paid = attempt_of(paid_no)
        paid_order_id, attempt_id = paid.order_id, paid.id
    pending_no = checkout(learner, [waiting])
    with app.app_context():
        qr = attempt_of(pending_no).qr_code
    instructor, admin = app.test_client(), app.test_client()
    login(instructor, "lin@example.com", TEACHER_PASSWORD)
    login(admin, "ada@example.com", STAFF_PASSWORD)
    return Site(learner, instructor, admin, app.test_client(), sold, paid_order_id, pending_no, attempt_id,
                "/" + qr.split("://", 1)[1].split("/", 1)[1])


# Rejected notifications whose channel equals "alipay" (Flask-Admin's third channel filter).
FILTERED = "/admin/rejected/?flt0_2=alipay"


def assert_security_headers(response, path: str) -> None:
    headers = response.headers
    assert headers.get("Content-Security-Policy") == CONTENT_SECURITY_POLICY, path
    assert headers.get("X-Content-Type-Options") == "nosniff", path
    assert headers.get("X-Frame-Options") == "DENY", path
    assert headers.get("Referrer-Policy") == "same-origin", path
    assert "Strict-Transport-Security" not in headers, path  # the test site is plain http


def test_the_policy_allows_only_this_origin_and_no_inline_code() -> None:
    directives = dict(part.split(" ", 1) for part in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert directives["img-src"] == "'self' data:"
    assert "unsafe" not in CONTENT_SECURITY_POLICY and "http" not in CONTENT_SECURITY_POLICY


def test_pages_of_every_kind_carry_the_headers_and_no_inline_code(app: Flask, site: Site, monkeypatch) -> None:
    pages = {
        "catalog": (site.anonymous, "/"),
        "course": (site.anonymous, "/courses/python"),
        "login": (site.anonymous, "/login"),
        "cart": (site.learner, "/cart/"),
        "pay page with its QR code": (site.learner, f"/orders/{site.pending_order_no}/pay"),
        "orders": (site.learner, "/orders"),
        "my courses": (site.learner, "/my/courses"),
        "earnings with its chart": (site.instructor, "/earnings/"),
        "admin dashboard": (site.admin, "/admin/"),
        "admin list with filters and a pager": (site.admin, "/admin/rejected/"),
        "admin list, filtered": (site.admin, FILTERED),
        "admin order page": (site.admin, f"/admin/order/{site.paid_order_id}/"),
        "admin details": (site.admin, f"/admin/attempt/details/?id={site.attempt_id}"),
        "admin edit form": (site.admin, f"/admin/course/edit/?id={site.course_id}"),
        "admin create form": (site.admin, "/admin/coupon/new/"),
        "emulator operator page": (site.anonymous, "/gateway/"),
        "emulator sandbox page": (site.anonymous, site.qr_path),
        "404 page": (site.anonymous, "/no-such-page"),
    }
    problems: dict[str, list[str]] = {}
    for name, (client, path) in pages.items():
        response = client.get(path)
        assert response.status_code == (404 if name == "404 page" else 200), (name, response.status_code)
        assert_security_headers(response, path)
        assert response.mimetype == "text/html", name
        found = inline_code(response.get_data(as_text=True))
        if found:
            problems[name] = found
    assert problems == {}


def test_the_pager_and_the_menus_of_the_back_office_are_there(site: Site) -> None:
    """The overridden Flask-Admin templates still render what they replaced."""
    page = site.admin.get("/admin/rejected/").get_data(as_text=True)
    assert 'class="pagination"' in page and '<span class="page-link">1</span>' in page
    assert 'class="dropdown-item filter"' in page and 'data-toggle="dropdown" href="#"' in page
    assert "js/admin.js" in page and "admin/js/bs4_filters.js" in page
    filtered = site.admin.get(FILTERED).get_data(as_text=True)
    assert '<div id="active-filters-data" class="d-none">[[2, "Channel", "alipay"]]</div>' in filtered


def test_json_answers_and_error_pages_carry_the_headers(app: Flask, site: Site, monkeypatch) -> None:
    api = site.anonymous.get("/api/v1/courses")
    assert api.status_code == 200 and api.is_json
    assert_security_headers(api, "/api/v1/courses")
    unauthorized = site.anonymous.get("/api/v1/orders/NOPE")
    assert unauthorized.status_code == 401
    assert_security_headers(unauthorized, "/api/v1/orders/NOPE")

    def broken() -> str:
        raise RuntimeError("a bug")

    monkeypatch.setitem(app.view_functions, "catalog.index", broken)
    failed = site.anonymous.get("/")
    assert failed.status_code == 500 and "Something went wrong" in failed.text
    assert_security_headers(failed, "/ (500)")
    assert inline_code(failed.get_data(as_text=True)) == []


def test_static_files_carry_the_headers_too(site: Site) -> None:
    with site.anonymous.get("/static/css/site.css") as response:
        assert response.status_code == 200
        assert_security_headers(response, "/static/css/site.css")


def test_hsts_is_sent_over_https_only(app: Flask, site: Site) -> None:
    assert "Strict-Transport-Security" not in site.anonymous.get("/").headers
    secure = site.anonymous.get("/", base_url="https://cashier.test")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_hsts_is_sent_when_the_public_address_is_https(app: Flask) -> None:
    app.config["PUBLIC_BASE_URL"] = "https://pay.example.com"
    response = app.test_client().get("/login")  # behind a proxy that ends TLS: plain http here
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


INLINE_IN_SOURCE = re.compile(
    r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle=|\son[a-z]+=|=\s*[\"']?\s*javascript:", re.IGNORECASE
)


@pytest.mark.parametrize("template", sorted(str(path.relative_to(TEMPLATES)) for path in TEMPLATES.rglob("*.html")))
def test_no_template_of_ours_holds_inline_code(template: str) -> None:
    """Also the templates the page test does not render."""
    source = (TEMPLATES / template).read_text()
    assert INLINE_IN_SOURCE.findall(source) == []


def test_the_scanner_finds_each_kind_of_inline_code() -> None:
    """The page test is not vacuous: its parser finds each kind of refused code."""
    html = (
        '<div style="color: red"><a href="javascript:alert(1)">x</a><button onclick="go()">b</button>'
        '<script>alert(1)</script><style>p {}</style><script src="https://cdn.example/x.js"></script></div>'
    )
    assert len(inline_code(html)) == 6
    assert INLINE_IN_SOURCE.findall(html)
