"""The License Manager's whole story in a real headless Chromium: with the mouse, and keyboard only."""

from __future__ import annotations

from collections.abc import Callable

from tests.e2e.browser.conftest import StartInstallation
from tests.e2e.browser.story import KEYS, Keyboard, Mouse, tell_the_story
from tests.support.browser import Screen
from tests.support.console import Installation


def test_an_administrator_manages_licenses_and_users_with_the_mouse(
    start: StartInstallation, screen: Callable[[Installation], Screen]
) -> None:
    manager = start(KEYS)
    tell_the_story(Mouse(screen(manager)), manager)


def test_an_administrator_manages_licenses_and_users_with_the_keyboard_only(
    start: StartInstallation, screen: Callable[[Installation], Screen]
) -> None:
    manager = start(KEYS)
    tell_the_story(Keyboard(screen(manager)), manager)
