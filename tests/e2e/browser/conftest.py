"""Fixtures of the browser tests: one headless Chromium for the run, a whole License Manager per test.

The browser tests never skip: where Chromium or its driver is missing they fail, saying
which Debian packages to install (scripts/test installs them when run as root).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterator
from typing import Any, Protocol

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.browser import Screen, chromium, why_no_browser
from tests.support.console import Installation, installation
from tests.support.servers import PostgresServer


class StartInstallation(Protocol):
    """Starts a whole License Manager whose license server knows `keys` (without workers if told)."""

    def __call__(self, keys: list[dict[str, Any]], *, workers: bool = True) -> Installation: ...


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    """One headless Chromium for every browser test of the run."""
    reason = why_no_browser()
    if reason is not None:
        pytest.fail(reason, pytrace=False)
    with chromium() as driver:
        yield driver


@pytest.fixture
def start(
    request: pytest.FixtureRequest, postgres: PostgresServer, redis_url: str
) -> Iterator[StartInstallation]:
    """`start(keys)`: a whole License Manager on a new PostgreSQL database and the test's Redis
    database, the license server knowing `keys`; stopped after the test, its logs printed if it failed."""
    started: list[Installation] = []
    with contextlib.ExitStack() as stack:

        def start_one(keys: list[dict[str, Any]], *, workers: bool = True) -> Installation:
            store_url = postgres.create_database("console")
            running = stack.enter_context(installation(store_url, redis_url, keys, workers=workers))
            started.append(running)
            return running

        yield start_one
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            for running in started:
                print(running.logs())


@pytest.fixture
def screen(browser: WebDriver) -> Callable[[Installation], Screen]:
    """`screen(installation)`: the browser, its cookies forgotten, on that installation's console."""

    def on(running: Installation) -> Screen:
        browser.get("about:blank")
        # Every console of the run is on 127.0.0.1, and cookies do not tell ports apart.
        browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
        return Screen(browser, running.url)

    return on


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test, so that fixtures can tell whether it failed."""
    report: pytest.TestReport = yield
    setattr(item, f"rep_{report.when}", report)
    return report
