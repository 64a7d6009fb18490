"""The browser side of the journeys: Debian's Chromium under Playwright against a live
site (tests/e2e/conftest.py runs it), each step kept as a numbered screenshot, QR codes
read back from the screenshots by zbar.

Pages are found by what does not change with the language (every page is translated):
element ids, ``data-*`` attributes, form actions and field names, hrefs, the classes the
styles hang on (``status-paid``), and the values the site itself stores (order numbers,
course titles), never the words a reader sees.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Locator, Page, Response

if TYPE_CHECKING:
    from tests.e2e.conftest import LiveSite

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Debian's package (scripts/system-packages installs it): nothing is downloaded at run time.
CHROMIUM = Path("/usr/bin/chromium")
ZBARIMG = "zbarimg"
# Where the screenshots go: artifacts/screenshots/<journey>/<nn>-<step>.png unless set.
SCREENSHOTS_VARIABLE = "BROWSER_SCREENSHOTS_DIR"
DEFAULT_SCREENSHOTS = PROJECT_ROOT / "artifacts" / "screenshots"

# Every action and every wait, unless a step says otherwise: a live server on two cores
# under a full test run answers in well under a second, so this is only a ceiling.
STEP_TIMEOUT_MS = 15_000
DESKTOP_VIEWPORT = {"width": 1280, "height": 800}
# The second device: a phone of the size most QR-code payments happen on, with touch.
PHONE = {
    "viewport": {"width": 375, "height": 812},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "user_agent": (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/156.0.0.0 Mobile Safari/537.36"
    ),
}
FAVICON = "/favicon.ico"
LEARNER_LOCALE = "zh-CN"  # the platform's default language: the journeys see Chinese pages

_AMOUNT = re.compile(r"(\d[\d,]*)\.(\d{2})")


def screenshots_root() -> Path:
    """The folder the journeys' screenshots go under (a relative setting is taken from
    the project's root, where `make test` runs)."""
    configured = os.environ.get(SCREENSHOTS_VARIABLE)
    if not configured:
        return DEFAULT_SCREENSHOTS
    path = Path(configured)
    return path if path.is_absolute() else PROJECT_ROOT / path


def fen_shown(text: str) -> int:
    """The one amount in a piece of page text (``¥149.00``, ``−¥14.90``, ``1,024.50``) as
    fen; a sign or currency mark around it is not read, so a translated page still parses."""
    amounts = _AMOUNT.findall(text)
    assert len(amounts) == 1, f"expected one amount in {text!r}"
    whole, cents = amounts[0]
    return int(whole.replace(",", "")) * 100 + int(cents)


def decode_qr(png: Path) -> str:
    """The one QR code in a screenshot, as zbar (zbarimg) reads it: the same way a phone's
    camera would, independently of how the site drew it."""
    result = subprocess.run(
        [ZBARIMG, "--raw", "-q", "-Sdisable", "-Sqrcode.enable", str(png)],
        capture_output=True, text=True, timeout=60,
    )
    # zbarimg exits 4 when the image holds no code it can read.
    assert result.returncode == 0, f"zbarimg read no QR code in {png} (exit {result.returncode}): {result.stderr}"
    symbols = result.stdout.splitlines()
    assert len(symbols) == 1, f"zbarimg read {len(symbols)} QR codes in {png}: {symbols}"
    return symbols[0]


@dataclass
class Journey:
    """One journey's browser: its contexts (a desktop per person, a phone), the numbered
    screenshots of its steps, and whatever went wrong in the pages along the way."""

    name: str
    site: LiveSite = field(repr=False)
    browser: Browser = field(repr=False)
    folder: Path
    steps: int = 0
    contexts: list[BrowserContext] = field(default_factory=list, repr=False)
    problems: list[str] = field(default_factory=list)

    def start(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)

    def desktop(self, who: str, locale: str = LEARNER_LOCALE) -> Page:
        """A desktop browser of its own (cookies and all) for one person."""
        return self._page(who, viewport=DESKTOP_VIEWPORT, locale=locale)

    def phone(self, who: str = "phone", locale: str = LEARNER_LOCALE) -> Page:
        """A phone: small viewport, touch, a mobile user agent; it shares nothing with
        the desktop (the payer's app opens the QR code's URL on its own)."""
        return self._page(who, locale=locale, **PHONE)

    def _page(self, who: str, **options: object) -> Page:
        # The site's Content-Security-Policy is enforced (bypass_csp stays off): a page
        # that needed inline script would fail its journey.
        context = self.browser.new_context(base_url=self.site.base_url, **options)
        context.set_default_timeout(STEP_TIMEOUT_MS)
        self.contexts.append(context)
        page = context.new_page()
        self._watch(page, who)
        return page

    def _watch(self, page: Page, who: str) -> None:
        """Console errors (a Content-Security-Policy refusal is one), uncaught script
        errors and server errors, on any page of the journey, fail it."""

        def console(message: ConsoleMessage) -> None:
            # Chromium asks every site for /favicon.ico by itself; the site has none.
            if message.type == "error" and not message.location.get("url", "").endswith(FAVICON):
                self.problems.append(f"{who}: console error at {page.url}: {message.text}")

        def answered(response: Response) -> None:
            if response.status >= 500:
                self.problems.append(f"{who}: {response.status} from {response.url}")

        page.on("console", console)
        page.on("pageerror", lambda error: self.problems.append(f"{who}: script error at {page.url}: {error}"))
        page.on("response", answered)

    def shot(self, page: Page, step: str, mask: Sequence[Locator] = ()) -> Path:
        """Save the whole page as the journey's next step, ``<nn>-<step>.png``; ``mask``
        covers what must not be kept in a CI artefact (a second-factor secret)."""
        self.steps += 1
        path = self.folder / f"{self.steps:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True, mask=list(mask))
        return path

    def keep(self, name: str) -> Path:
        """A path beside the screenshots for a file the journey downloaded."""
        return self.folder / name

    def shoot_open_pages(self, step: str) -> None:
        """Every page still open, as it was when the journey stopped (after a failure)."""
        for context in self.contexts:
            for page in context.pages:
                try:
                    self.shot(page, step)
                except Exception as error:  # noqa: BLE001 - a closed or crashed page
                    self.problems.append(f"no {step} screenshot of {page.url}: {error}")

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts.clear()
