"""Names that carry markup show as text on every page and in every dialog: no alert, no element made."""

from __future__ import annotations

from collections.abc import Callable

from tests.e2e.browser.conftest import StartInstallation
from tests.e2e.browser.story import Mouse, add_user
from tests.support.browser import Screen
from tests.support.console import ADMIN_NAME, ADMIN_PASSWORD, Installation
from tests.support.license_server import key_entry

HOSTILE_USER = "<img src=x onerror=alert(1)>"
HOSTILE_CUSTOMER = '<script>alert("customer")</script><b id="injected">Markup & Co</b>'
KEY = "AVTR-WEBX-ACTV-0004"
# Elements that only the hostile names could have made.
INJECTED = "img[src='x'], img[onerror], b#injected, script:not([src])"


def shows_as_text(page: Screen, *texts: str) -> None:
    """Each of `texts` shows literally, no alert opened and nothing was made of the markup."""
    for text in texts:
        page.wait_for_text(text)
    assert page.alert_opened() is None, f"an alert opened on {page.path}"
    made = page.driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.outerHTML)", INJECTED
    )
    assert made == [], f"markup became elements on {page.path}: {made}"


def test_a_user_name_and_a_customer_name_with_markup_show_as_text(
    start: StartInstallation, screen: Callable[[Installation], Screen]
) -> None:
    manager = start([key_entry(KEY, 4, customer=HOSTILE_CUSTOMER)], workers=False)
    page = screen(manager)
    hands = Mouse(page)
    page.open("/")
    page.sign_in(ADMIN_NAME, ADMIN_PASSWORD)
    hands.press("button", "Accept")

    hands.press("button", "Add License")
    hands.type("License key", KEY, page.dialog)
    hands.press("button", "OK", page.dialog)
    page.wait_for_text("4 seats", within=page.dialog)
    shows_as_text(page)
    hands.close_dialog()
    shows_as_text(page, HOSTILE_CUSTOMER)

    hands.press("tab", "Users")
    add_user(hands, HOSTILE_USER)
    shows_as_text(page, HOSTILE_USER)
    page.open("/users")
    shows_as_text(page, HOSTILE_USER)
    hands.press("button", "Remove", page.in_row(HOSTILE_USER))
    page.wait_for_text(HOSTILE_USER, within=page.dialog)
    shows_as_text(page)
    hands.close_dialog()
    page.fill("Search users", HOSTILE_USER)
    hands.press("button", "Search")
    shows_as_text(page, HOSTILE_USER)

    hands.press("tab", "Events")
    shows_as_text(page, HOSTILE_USER)
