"""Browser journeys: Debian's Chromium, headless, driven by Playwright against the live
site of the end-to-end tests (the web server and an RQ worker as real subprocesses,
tests/e2e/conftest.py), on SQLite or, in `make test`, PostgreSQL.

A failed journey gets the live processes' logs appended to its report and a last
screenshot of every page still open; the screenshots of every journey are kept
(browsing.py `screenshots_root`).
"""
from __future__ import annotations

import re
import shutil
from typing import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.browser.browsing import CHROMIUM, ZBARIMG, Journey, screenshots_root
from tests.e2e.conftest import LiveSite, e2e_database_url, live_site, log_sections

# The end-to-end fixtures, used here as they are.
__all__ = ["e2e_database_url", "live_site"]
# Whether a journey's test itself failed, for its fixture's teardown to know.
CALL_FAILED = pytest.StashKey[bool]()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every journey runs on the stack production runs: jobs on an RQ worker via Redis."""
    if "live_site" in metafunc.fixturenames:
        metafunc.parametrize("live_site", ["rq"], indirect=True)


@pytest.fixture(scope="package")
def chromium() -> Iterator[Browser]:
    """One headless Chromium for the journeys (closed after the last of them), from
    Debian's package: Playwright's own browser builds are never used (`playwright
    install` is not run anywhere)."""
    for needed in (str(CHROMIUM), ZBARIMG):
        if shutil.which(needed) is None:
            pytest.fail(f"{needed} is missing: scripts/system-packages installs it (Debian's chromium, zbar-tools)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def journey(request: pytest.FixtureRequest, live_site: LiveSite, chromium: Browser) -> Iterator[Journey]:
    """The journey's browser on the live site, its screenshots in a folder named after the
    test (emptied first). After a failure every open page is shot once more; after a
    pass, any problem a page reported (browsing.py `Journey._watch`) fails the test."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.originalname.removeprefix("test_"))
    journey = Journey(name, live_site, chromium, screenshots_root() / name)
    journey.start()
    request.node.journey = journey
    failed = True
    try:
        yield journey
        failed = request.node.stash.get(CALL_FAILED, True)
        if failed:
            journey.shoot_open_pages("failure")
    finally:
        journey.close()
    if journey.problems and not failed:
        pytest.fail("the pages reported problems:\n" + "\n".join(journey.problems))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ANN201
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    if not report.failed:
        return
    journey: Journey | None = getattr(item, "journey", None)
    if journey is not None:
        report.sections.append(("screenshots", str(journey.folder)))
        if journey.problems:
            report.sections.append(("page problems", "\n".join(journey.problems)))
    site: LiveSite | None = getattr(item, "live_site", None)
    if site is not None:
        report.sections.extend(log_sections(site.processes))
