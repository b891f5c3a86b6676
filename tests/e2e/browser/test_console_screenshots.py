"""The screenshots of docs/console.md can be taken: every page, a PNG of the fixed size."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

from tests.e2e.browser.conftest import StartInstallation
from tests.e2e.browser.screenshots import KEYS, PAGES, SIZE, take_screenshots
from tests.support.browser import Screen
from tests.support.console import Installation

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """The width and height a PNG file's header gives."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR", f"{path} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def test_a_screenshot_of_each_page_is_taken_at_the_fixed_size(
    start: StartInstallation, screen: Callable[[Installation], Screen], tmp_path: Path
) -> None:
    manager = start(KEYS)
    taken = take_screenshots(screen(manager), manager, tmp_path)
    assert [path.stem for path in taken] == list(PAGES)
    assert {path.stem: png_size(path) for path in taken} == dict.fromkeys(PAGES, SIZE)
