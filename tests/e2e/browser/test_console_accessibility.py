"""axe-core on every page of the console and every dialog open: no serious or critical violation."""

from __future__ import annotations

from collections.abc import Callable

from tests.e2e.browser.conftest import StartInstallation
from tests.e2e.browser.story import FIRST, KEYS, SECOND, Mouse, add_license, add_user
from tests.support.browser import Screen
from tests.support.console import ADMIN_NAME, ADMIN_PASSWORD, Installation


def test_no_page_or_dialog_of_the_console_has_a_serious_or_critical_accessibility_violation(
    start: StartInstallation, screen: Callable[[Installation], Screen]
) -> None:
    manager = start(KEYS)
    page = screen(manager)
    hands = Mouse(page)
    violations: list[str] = []

    def check(what: str) -> None:
        violations.extend(f"{what}: {line}" for line in page.accessibility_violations())

    page.open("/")
    page.find("button", "Sign in")
    check("sign-in")
    hands.type("Name", ADMIN_NAME)
    hands.type("Password", "not the password")
    hands.press("button", "Sign in")
    page.find("alert")
    check("sign-in refused")
    page.sign_in(ADMIN_NAME, ADMIN_PASSWORD)
    page.find("button", "Accept")
    check("agreement")
    hands.press("button", "Accept")

    page.find("button", "Add License")
    check("License tab, no license")
    hands.press("button", "Add License")
    page.dialog()
    check("Add License dialog")
    hands.type("License key", FIRST, page.dialog)
    hands.press("button", "OK", page.dialog)
    page.wait_for_text("3 seats", within=page.dialog)
    check("Add License dialog, key validated")
    hands.type("License key", "AVTR-NONE-NONE-0000", page.dialog)
    hands.press("button", "OK", page.dialog)
    page.wait_for_text("No license with this key exists", within=page.dialog)
    check("Add License dialog, key refused")
    hands.close_dialog()
    add_license(hands, SECOND, "2 seats")
    hands.press("button", "Remove", page.in_row("…0002"))
    page.dialog()
    check("Remove license dialog")
    hands.close_dialog()
    hands.press("button", "Refresh", page.in_row("…0003"))
    page.wait_for_text("Nothing changed")
    check("License tab, two licenses, refreshed")

    hands.press("tab", "Users")
    page.find("button", "Add User")
    check("Users tab, nobody")
    for name in ("bob", "carol", "dave", "erin", "frank"):
        add_user(hands, name)
    hands.press("button", "Add User")
    page.dialog()
    check("Add User dialog")
    hands.close_dialog()
    hands.press("tab", "License")
    hands.press("button", "Remove", page.in_row("…0002"))
    hands.press("button", "OK", page.dialog)
    page.wait_for_text("Over the limit.")
    check("License tab, over the limit")
    hands.press("tab", "Users")
    page.wait_for_text("must be removed")
    check("Users tab, over the limit")
    hands.press("checkbox", "Select bob", page.in_row("bob"))
    hands.press("button", "Remove selected")
    page.dialog()
    check("Remove users dialog")
    hands.close_dialog()

    hands.press("tab", "Events")
    page.wait_for_text("license_removed")
    check("Events tab")
    hands.press("tab", "Report")
    page.find("heading", "Report")
    check("Report tab")

    assert not violations, "\n".join(violations)
