"""Staff on the live server: signing in with the password, then the second factor."""
from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import pyotp
import requests

from tests.e2e.test_live_purchase import TIMEOUT, element_text, post_form

if TYPE_CHECKING:
    from tests.e2e.conftest import LiveSite


def log_in(site: LiveSite, session: requests.Session, email: str, password: str) -> None:
    """The password, then the second factor: a staff member made with `flask users create`
    sets it up on the first login, scanning the page's secret into an authenticator."""
    page = session.get(site.url("/login"), timeout=TIMEOUT)
    answer = post_form(session, page, "/login", email=email, password=password)
    assert answer.status_code == 302, answer.text
    setup = session.get(urljoin(page.url, answer.headers["Location"]), timeout=TIMEOUT)
    assert urlsplit(setup.url).path == "/second-factor/setup", setup.url
    secret = element_text(setup, "totp-secret").replace(" ", "")
    done = post_form(session, setup, "/second-factor/setup", code=pyotp.TOTP(secret).now())
    assert done.status_code == 200 and 'id="recovery-codes"' in done.text, done.text
