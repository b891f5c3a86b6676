"""Screenshots of the console for docs/console.md: the sign-in page, the agreement, each tab, a dialog.

    .venv/bin/python -m tests.e2e.browser.screenshots docs/console

starts a whole License Manager of its own (a SQLite store, a Redis of its own, the
development license server, the admin worker, the enrolment consumer and `avtorlm
serve`), tells a short story in headless Chromium and writes one PNG per page, each
exactly SIZE pixels (1280 × 960), into the folder given.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tests.e2e.browser.story import Mouse, add_license, add_user
from tests.support.browser import Screen, chromium, fix_viewport, why_no_browser
from tests.support.console import ADMIN_NAME, ADMIN_PASSWORD, Installation, installation
from tests.support.license_server import key_entry
from tests.support.servers import redis_server

TEN, THREE = "AVTR-7Q2M-K9XD-4HFT-0010", "AVTR-DEMO-PERP-SEAT-0003"
KEYS = [
    key_entry(TEN, 8, expires_at="2027-06-30T23:59:59Z", customer="Example Publishing Ltd"),
    key_entry(THREE, 3, expires_at=None, customer="Example Publishing Ltd"),
]
# Editors who start Avtor in the CMS (seats assigned automatically) and users the administrator adds.
EDITORS = ("sitecore\\anna.berg", "sitecore\\bruno.costa", "sitecore\\chen.wei", "sitecore\\dana.ilic")
ADDED = ("sitecore\\erik.nilsson", "sitecore\\fatima.zahra")
# Tall enough for the Users tab's six seat holders.
SIZE = (1280, 960)
PAGES = ("sign-in", "agreement", "add-license", "license", "users", "events", "report")


def take_screenshots(screen: Screen, manager: Installation, directory: Path) -> list[Path]:
    """Tell a short story on `manager`'s console and write a PNG of each page into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    fix_viewport(screen.driver, SIZE)
    hands = Mouse(screen)
    taken: list[Path] = []

    def shoot(name: str) -> None:
        path = directory / f"{name}.png"
        screen.screenshot(path)
        taken.append(path)

    screen.open("/")
    screen.find("button", "Sign in")
    shoot("sign-in")
    screen.sign_in(ADMIN_NAME, ADMIN_PASSWORD)
    screen.find("button", "Accept")
    shoot("agreement")
    hands.press("button", "Accept")

    add_license(hands, THREE, "3 seats")
    hands.press("button", "Add License")
    hands.type("License key", TEN, screen.dialog)
    hands.press("button", "OK", screen.dialog)
    screen.wait_for_text("8 seats", within=screen.dialog)
    shoot("add-license")
    hands.close_dialog()
    screen.no_dialog()
    manager.license_server.put_key(TEN, seats=10)
    hands.press("button", "Refresh", screen.in_row("…0010"))
    screen.wait_for_text("seats 8 → 10")
    screen.driver.execute_script("document.activeElement.blur()")
    shoot("license")

    for editor in EDITORS:
        assert manager.enrol(editor, host="cms-prod-1")["allowed"]
    hands.press("tab", "Users")
    for name in ADDED:
        add_user(hands, name)
    screen.row(EDITORS[-1])
    screen.driver.execute_script("document.activeElement.blur()")
    shoot("users")

    hands.press("tab", "Events")
    screen.wait_for_text("user_added")
    shoot("events")
    hands.press("tab", "Report")
    screen.find("heading", "Report")
    shoot("report")
    fix_viewport(screen.driver)
    return taken


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.browser.screenshots", description=__doc__)
    parser.add_argument("directory", type=Path, help="where to write the PNG files, e.g. docs/console")
    options = parser.parse_args(argv)
    reason = why_no_browser()
    if reason is not None:
        print(reason, file=sys.stderr)
        return 2
    with (
        tempfile.TemporaryDirectory(prefix="avtor-screenshots-") as work,
        redis_server() as redis,
    ):
        redis.flush()
        with (
            installation(f"sqlite:///{Path(work) / 'avtor.sqlite3'}", redis.url, KEYS) as manager,
            chromium() as driver,
        ):
            for path in take_screenshots(Screen(driver, manager.url), manager, options.directory):
                print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
