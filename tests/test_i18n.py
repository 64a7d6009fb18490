"""Chinese and English (app/i18n): which language a visitor gets, the switch, dates the
locale's way, and a catalogue that holds a Chinese translation of every string the
sources mark, no more and no less, compiled as committed.

(tests/test_i18n_pages.py renders the pages in both languages.)
"""
from __future__ import annotations

import re
from datetime import datetime
from io import BytesIO
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from flask import Flask
from flask_babel import get_locale

from app.config import ConfigError, load_config
from app.i18n import LANGUAGE_COOKIE, format_day, format_moment

ROOT = Path(__file__).resolve().parent.parent
CATALOGUES = ROOT / "app" / "translations"
# Under "zh": Babel reads our "zh_CN" as zh_Hans_CN, for which gettext looks in
# zh_Hans_CN/ and zh/, never zh_CN/.
ZH_PO = CATALOGUES / "zh" / "LC_MESSAGES" / "messages.po"
ZH_MO = ZH_PO.with_suffix(".mo")
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


def page_lang(response) -> str:
    return re.search(r'<html lang="([^"]+)"', response.text).group(1)


@pytest.mark.app_config(DEFAULT_LOCALE="zh_CN")
@pytest.mark.parametrize(("accept", "lang"), [
    (None, "zh-CN"),                       # no preference: the site's default
    ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
    ("zh-TW", "zh-CN"),                    # Chinese of another region: ours
    ("zh", "zh-CN"),
    ("en-US,en;q=0.9", "en"),
    ("en-GB", "en"),
    ("fr-FR,fr;q=0.9", "zh-CN"),           # neither: the default
    ("fr-FR,en;q=0.5", "en"),
])
def test_the_language_follows_the_browser(client, accept, lang):
    headers = {"Accept-Language": accept} if accept else {}
    assert page_lang(client.get("/", headers=headers)) == lang


@pytest.mark.app_config(DEFAULT_LOCALE="zh_CN")
def test_the_switch_keeps_the_chosen_language_over_the_browsers(client):
    chosen = client.post("/language", data={"lang": "en", "next": "/cart/"})
    assert chosen.status_code == 302 and chosen.headers["Location"] == "/cart/"
    cookie = client.get_cookie(LANGUAGE_COOKIE)
    assert cookie.value == "en" and cookie.http_only and cookie.same_site == "Lax"
    assert page_lang(client.get("/", headers={"Accept-Language": "zh-CN"})) == "en"
    client.post("/language", data={"lang": "zh_CN", "next": "/"})
    assert page_lang(client.get("/", headers={"Accept-Language": "en"})) == "zh-CN"


@pytest.mark.parametrize("form", [
    {"lang": "fr", "next": "/"},                    # not one of ours
    {"lang": "en\r\nSet-Cookie: x=1", "next": "/"},
    {"next": "/"},
])
def test_an_unknown_language_changes_nothing(client, form):
    answer = client.post("/language", data=form)
    assert answer.status_code == 302 and client.get_cookie(LANGUAGE_COOKIE) is None


def test_the_switch_goes_back_only_to_a_page_of_ours(client):
    assert client.post("/language", data={"lang": "en", "next": "https://evil.example/"}).headers["Location"] == "/"
    assert client.post("/language", data={"lang": "en", "next": "//evil.example"}).headers["Location"] == "/"


@pytest.mark.app_config(WTF_CSRF_ENABLED=True)
def test_the_switch_needs_the_forms_csrf_token(client):
    """Another site cannot choose a visitor's language for them."""
    assert client.post("/language", data={"lang": "zh_CN", "next": "/"}).status_code in (302, 400)
    assert client.get_cookie(LANGUAGE_COOKIE) is None


def test_every_page_offers_the_switch_and_marks_the_current_language(client):
    page = client.get("/", headers={"Accept-Language": "en"}).text
    assert 'action="/language"' in page and 'name="next" value="/"' in page
    assert re.search(r'value="en" lang="en"\s+aria-current="true"', page)
    assert re.search(r'value="zh_CN" lang="zh-CN"\s*>', page)


@pytest.mark.app_config(DEFAULT_LOCALE="zh_CN")
def test_the_back_office_stays_in_english(app: Flask):
    with app.test_request_context("/admin/order/", headers={"Accept-Language": "zh-CN"}):
        assert str(get_locale()) == "en"
    with app.test_request_context("/orders", headers={"Accept-Language": "zh-CN"}):
        assert get_locale().language == "zh"


def test_dates_are_beijing_time_the_locales_way(app: Flask):
    moment = datetime(2026, 11, 21, 16, 30)  # stored UTC: 00:30 on the 22nd in Beijing
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        assert (format_day(moment), format_moment(moment)) == ("2026年11月22日", "2026年11月22日 00:30")
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert (format_day(moment), format_moment(moment)) == ("November 22, 2026", "November 22, 2026 00:30")


def test_an_unknown_default_language_stops_the_start(tmp_path):
    with pytest.raises(ConfigError, match="DEFAULT_LOCALE must be one of zh_CN, en"):
        load_config(str(tmp_path), environ={"DEFAULT_LOCALE": "fr"})


def marked_strings() -> set[str]:
    """What `make translations` would extract from the sources now."""
    with open(ROOT / "babel.cfg") as config:
        method_map, options_map = parse_mapping_cfg(config)
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None,
                "lazy_ngettext": (1, 2)}
    found = set()
    for _, _, message, _, _ in extract_from_dir(str(ROOT), method_map, options_map, keywords=keywords):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


def zh_catalogue():
    with open(ZH_PO, "rb") as po:
        return read_po(po, locale="zh")


def test_the_chinese_catalogue_holds_exactly_what_the_sources_mark():
    """A string marked in a page or in Python and missing here would show in English on a
    Chinese page; one here that no source marks any more is dead weight. `make
    translations` brings the catalogue up to date; then translate what it added."""
    in_catalogue = {message.id if isinstance(message.id, str) else message.id[0]
                    for message in zh_catalogue() if message.id}
    marked = marked_strings()
    assert sorted(marked - in_catalogue) == [], "marked but not in the catalogue"
    assert sorted(in_catalogue - marked) == [], "in the catalogue but marked nowhere"


def test_every_string_has_a_chinese_translation_with_the_same_placeholders():
    problems = []
    for message in zh_catalogue():
        if not message.id:
            continue
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        if message.fuzzy or not all(strings):
            problems.append(f"untranslated: {ids[0]!r}")
            continue
        wanted = set(PLACEHOLDER.findall(ids[-1]))
        for string in strings:
            if set(PLACEHOLDER.findall(string)) != wanted:
                problems.append(f"placeholders differ: {ids[0]!r} -> {string!r}")
    assert problems == []


def test_the_compiled_catalogue_is_the_committed_one():
    """The .mo is committed (the site runs from a clone without a build step); it must be
    what compiling the .po gives. `make translations` compiles it."""
    compiled = BytesIO()
    write_mo(compiled, zh_catalogue())
    compiled.seek(0)
    with open(ZH_MO, "rb") as committed:
        assert messages_of(read_mo(committed)) == messages_of(read_mo(compiled))


def messages_of(catalogue) -> dict:
    """msgid → msgstr, plural forms as tuples."""
    def frozen(value):
        return value if isinstance(value, str) else tuple(value)

    return {frozen(message.id): frozen(message.string) for message in catalogue if message.id}


@pytest.mark.app_config(DEFAULT_LOCALE="zh_CN")
def test_a_job_or_command_speaks_the_default_language(app: Flask):
    """No request, no browser: a message read in a job is in DEFAULT_LOCALE rather than
    failing for want of a request."""
    from app.accounts.services import AccountError, create_user

    with app.app_context():
        assert get_locale().language == "zh"
        with pytest.raises(AccountError) as refused:
            create_user("ann@example.com", "short")
        assert refused.value.message == zh_catalogue()["The password needs at least 8 characters."].string


@pytest.mark.parametrize("code", [400, 403, 404, 429, 500])
@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_error_pages_speak_the_visitors_language(app: Flask, code, language):
    from app.errors import ERROR_PAGES, error_page

    with app.test_request_context(headers={"Accept-Language": language}):
        page = error_page(code)
        title, sentence = (str(text) for text in ERROR_PAGES[code])  # read in this request
    assert f'<html lang="{language}">' in page and title in page and sentence in page
    written_in_chinese = bool(re.search(r"[\u4e00-\u9fff]", title + sentence))
    assert written_in_chinese == (language == "zh-CN")


def test_a_missing_page_answers_in_chinese_to_a_chinese_browser(client):
    page = client.get("/no-such-page", headers={"Accept-Language": "zh-CN"})
    assert page.status_code == 404
    assert zh_catalogue()["Page not found"].string in page.text
