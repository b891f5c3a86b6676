"""The License Manager's whole story on its screen, told by an administrator's hands: a mouse, or a keyboard.

Both tests of test_console_story.py tell it; only the hands differ. Everything is real:
the console (`avtorlm serve`), the admin worker that refreshes, the enrolment consumer
that answers the hosts, the development license server, PostgreSQL and Redis.
"""

from __future__ import annotations

from typing import Any, Protocol

from selenium.webdriver.common.keys import Keys

from domain.agreement import AGREEMENT_TEXT
from tests.support.browser import Scope, Screen
from tests.support.console import ADMIN_NAME, ADMIN_PASSWORD, Installation
from tests.support.license_server import key_entry

FIRST, SECOND = "AVTR-WEB1-ACTV-0003", "AVTR-WEB2-PERP-0002"
KEYS: list[dict[str, Any]] = [
    key_entry(FIRST, 3, expires_at="2031-06-30T23:59:59Z", customer="Example Corp"),
    key_entry(SECOND, 2, expires_at=None, customer="Example Corp"),
]
AGREEMENT_TITLE = AGREEMENT_TEXT.strip().splitlines()[0].strip()


class Hands(Protocol):
    """How the administrator acts on the screen."""

    screen: Screen

    def press(self, role: str, name: str, within: Scope = None) -> None:
        """Press the button (or tab, or checkbox) named `name`."""

    def type(self, label: str, value: str, within: Scope = None) -> None:
        """Type `value` into the field labelled `label`."""

    def close_dialog(self) -> None:
        """Close the dialog open now without doing what it offers."""


class Mouse:
    """Clicks, and types letters into the field it clicked."""

    def __init__(self, screen: Screen) -> None:
        self.screen = screen

    def press(self, role: str, name: str, within: Scope = None) -> None:
        self.screen.find(role, name, within).click()

    def type(self, label: str, value: str, within: Scope = None) -> None:
        field = self.screen.field(label, within)
        field.click()
        field.clear()
        field.send_keys(value)

    def close_dialog(self) -> None:
        self.press("button", "Cancel", self.screen.dialog)


class Keyboard:
    """Tab and Shift+Tab to move, Enter and Space to act, Escape to close: never a mouse."""

    def __init__(self, screen: Screen) -> None:
        self.screen = screen

    def press(self, role: str, name: str, within: Scope = None) -> None:
        element = self.screen.tab_to(name, role, within=within)
        # A checkbox is ticked with Space; a button or a link is followed with Enter.
        self.screen.press(Keys.SPACE if element.aria_role == "checkbox" else Keys.ENTER)

    def type(self, label: str, value: str, within: Scope = None) -> None:
        self.screen.tab_to(label, "textbox", within=within)
        self.screen.press(value)

    def close_dialog(self) -> None:
        self.screen.press(Keys.ESCAPE)


def tell_the_story(hands: Hands, manager: Installation) -> None:
    """Sign in, accept, add and refresh licenses, fill the seats, go over the limit and back."""
    screen = hands.screen
    server = manager.license_server

    # Signing in: nothing of the console shows before.
    screen.open("/")
    screen.find("button", "Sign in")
    assert not [tab for tab in ("License", "Users", "Events") if screen.all("tab", tab)], "tabs show"
    hands.type("Name", ADMIN_NAME)
    hands.type("Password", ADMIN_PASSWORD)
    hands.press("button", "Sign in")

    # The agreement, in full, and nothing else works until it is accepted.
    screen.find("button", "Accept")
    assert AGREEMENT_TITLE in screen.text
    screen.open("/users")
    screen.find("button", "Accept")
    assert not screen.all("button", "Add User")
    hands.press("button", "Accept")

    # The first license: its seats and expiry read in the dialog.
    screen.find("button", "Add License")
    assert "No license yet." in screen.text
    add_license(hands, FIRST, "3 seats", "2031-06-30")
    screen.row("…0003")

    # The vendor sells one seat more: Refresh picks it up through the admin worker.
    server.put_key(FIRST, seats=4)
    hands.press("button", "Refresh", screen.in_row("…0003"))
    screen.wait_for_text("seats 3 → 4")
    add_license(hands, SECOND, "2 seats", "no expiry")
    screen.wait_for_definition("Licensed", "6")

    # Users until the seats run out: five added on the screen, the sixth an editor starting on a host.
    hands.press("tab", "Users")
    screen.find("button", "Add User")
    for name in ("bob", "carol", "dave", "erin", "frank"):
        add_user(hands, name)
    assert manager.enrol("grace")["allowed"]
    screen.row("grace")  # the list follows the hosts without a reload
    screen.wait_for_text("No seat is free.")

    # The next editor is refused through Redis, and the screen refuses the next user too.
    refused = manager.enrol("heidi")
    assert (refused["allowed"], refused["outcome"]) == (False, "no_seats"), refused
    hands.press("button", "Add User")
    hands.type("User name", "ivan", screen.dialog)
    hands.press("button", "OK", screen.dialog)
    screen.wait_for_text("No seat is free", within=screen.dialog)
    hands.close_dialog()
    screen.no_dialog()
    assert [row for row in screen.rows() if "heidi" in row or "ivan" in row] == []

    # Removing a license says what it does, then the banner says what to do.
    hands.press("tab", "License")
    hands.press("button", "Remove", screen.in_row("…0002"))
    warning = screen.wait_for_text("2 over the limit", within=screen.dialog)
    assert "Its 2 seats go at once" in warning
    hands.press("button", "OK", screen.dialog)
    screen.no_dialog()
    screen.wait_for_text("Over the limit.")
    assert "until 2 users are removed" in screen.text

    # Back under the limit: two users selected and removed at once.
    hands.press("tab", "Users")
    screen.wait_for_text("2 users must be removed")
    for name in ("bob", "carol"):
        hands.press("checkbox", f"Select {name}", screen.in_row(name))
    hands.press("button", "Remove selected")
    screen.wait_for_text("Remove bob, carol? Their 2 seats are freed at once", within=screen.dialog)
    hands.press("button", "OK", screen.dialog)
    screen.no_dialog()
    screen.wait_for_text("bob, carol no longer hold a seat.")
    screen.wait_until_gone("Over the limit.")
    screen.wait_for_definition("Free", "0")
    assert [row for row in screen.rows() if "bob" in row or "carol" in row] == []
    assert manager.enrol("dave")["allowed"]

    # Every change names the administrator who made it.
    hands.press("tab", "Events")
    screen.wait_for_text("license_removed")
    assert ADMIN_NAME in screen.text

    hands.press("button", "Sign out")
    screen.find("button", "Sign in")


def add_license(hands: Hands, key: str, *shows: str) -> None:
    """Add License: type the key, OK, and read what the dialog shows of it; then close it."""
    screen = hands.screen
    hands.press("button", "Add License")
    hands.type("License key", key, screen.dialog)
    hands.press("button", "OK", screen.dialog)
    for text in shows:
        screen.wait_for_text(text, within=screen.dialog)
    assert key not in screen.text, "the whole key shows on the screen"
    hands.close_dialog()
    screen.no_dialog()


def add_user(hands: Hands, name: str) -> None:
    """Add User: type the name, OK, read that the user holds a seat; close the dialog."""
    screen = hands.screen
    hands.press("button", "Add User")
    hands.type("User name", name, screen.dialog)
    hands.press("button", "OK", screen.dialog)
    screen.wait_for_text(f"{name} now holds a seat.", within=screen.dialog)
    hands.close_dialog()
    screen.no_dialog()
    screen.row(name)
