"""Languages: Chinese (zh_CN, the default) and English, for learners, instructors, the
emulator's pages and what they are told (flashed messages, errors).

A request's language is the one the visitor chose with the switch in the page header
(the ``lang`` cookie), else the best match of the browser's Accept-Language, else
DEFAULT_LOCALE. The back office stays in English whatever the visitor's language: its
templates are ours in English, and Flask-Admin would otherwise translate only its own
chrome around them.

Dates are shown in Beijing time, the locale's way (2026年11月22日 / November 22, 2026);
amounts are ``¥94.50`` in both languages (``app.money.display_yuan``), as both write them.
"""
from __future__ import annotations

from datetime import datetime

from babel.dates import format_date, format_time
from flask import Flask, current_app, has_request_context, request
from flask_babel import Babel, LazyString, get_locale

from app.timeutil import beijing

LANGUAGES = {"zh_CN": "中文", "en": "English"}
LANGUAGE_COOKIE = "lang"
# The back office's URL prefix: see the module docstring.
BACK_OFFICE_PREFIX = "/admin"



def in_reader_language(zh: str, en: str) -> LazyString:
    """Text the data holds in both languages (course titles), chosen when the message
    around it is read, in the reader's language."""
    return LazyString(lambda: en if current_language() == "en" else zh)

def select_locale() -> str:
    if not has_request_context():  # a job or a command: nobody's browser to follow
        return current_app.config["DEFAULT_LOCALE"]
    if request.path.startswith(BACK_OFFICE_PREFIX):
        return "en"
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    default = current_app.config["DEFAULT_LOCALE"]
    # Werkzeug matches "zh-CN", "zh_CN" and a bare "zh" (or "zh-TW") to zh_CN, and
    # "en-US" to en.
    return request.accept_languages.best_match(list(LANGUAGES), default=default) or default


def current_language() -> str:
    """This request's language, a key of LANGUAGES (Babel reads "zh_CN" as zh_Hans_CN)."""
    locale = get_locale()
    return "en" if locale is not None and locale.language == "en" else "zh_CN"


def html_lang() -> str:
    """The page's ``lang`` attribute, in BCP 47."""
    return current_language().replace("_", "-")


def format_day(moment: datetime) -> str:
    """A stored naive-UTC moment's Beijing date, the locale's long way."""
    return format_date(beijing(moment).date(), "long", locale=get_locale())


def format_moment(moment: datetime) -> str:
    """A stored naive-UTC moment in Beijing time: date the locale's long way, then HH:mm."""
    return f"{format_day(moment)} {format_time(beijing(moment).time(), 'HH:mm', locale=get_locale())}"


def init_i18n(app: Flask) -> None:
    from app.i18n.views import bp

    Babel(app, locale_selector=select_locale)
    app.register_blueprint(bp)
    app.jinja_env.filters["day"] = format_day
    app.jinja_env.filters["moment"] = format_moment
    app.jinja_env.globals.update(html_lang=html_lang, current_language=current_language, languages=LANGUAGES)
