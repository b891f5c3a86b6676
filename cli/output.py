"""How commands answer: sentences and tables for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from domain.licenses import masked_key
from domain.moments import format_instant

NOTHING = "-"
# A table cell longer than this is shortened with "…"; --json always has the full value.
WIDEST_CELL = 60


def say(text: str = "") -> None:
    """Write a line for the administrator."""
    print(text, flush=True)


def warn(text: str) -> None:
    """Write a problem the administrator must read, on stderr."""
    print(text, file=sys.stderr, flush=True)


def emit_json(document: dict[str, Any]) -> None:
    """Write one JSON object for scripts."""
    print(json.dumps(document, indent=2, ensure_ascii=False), flush=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], widest: int = WIDEST_CELL) -> str:
    """A plain-text table with a header line, columns padded to their widest cell, long cells shortened."""
    rows = [[shortened(str(cell), widest) for cell in row] for row in rows]
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = [_row(headers, widths), _row(["-" * width for width in widths], widths)]
    lines += [_row(row, widths) for row in rows]
    return "\n".join(lines)


def shortened(text: str, width: int = WIDEST_CELL) -> str:
    """`text` cut to `width` characters, the last one "…", when it is longer."""
    return text if len(text) <= width else text[: width - 1] + "…"


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(str(cell).ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()


def when(moment: datetime | None) -> str:
    """An instant for people, written as everywhere else (RFC 3339 UTC to the second), or '-'."""
    return NOTHING if moment is None else format_instant(moment)


def instant(moment: datetime | None) -> str | None:
    """An instant for scripts: RFC 3339 UTC, or null."""
    return None if moment is None else format_instant(moment)


def shown_key(key: str, show_keys: bool) -> str:
    """The key in full if the administrator asked for it, masked otherwise."""
    return key if show_keys else masked_key(key)


def plural(count: int, noun: str) -> str:
    """'1 seat', '2 seats'."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def users_hold(count: int) -> str:
    """'1 user holds a seat', '3 users hold seats'."""
    return "1 user holds a seat" if count == 1 else f"{count} users hold seats"
