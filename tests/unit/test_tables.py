"""Tables for people stay readable whatever their cells hold."""

from __future__ import annotations

from cli.output import WIDEST_CELL, table


def test_a_long_name_is_shortened_so_the_table_stays_narrow() -> None:
    name = "sitecore\\" + "x" * 247
    shown = table(["USER", "ASSIGNED"], [[name, "2026-11-30T09:12:00Z"], ["bob", "2026-11-30T09:13:00Z"]])
    assert max(len(line) for line in shown.splitlines()) <= WIDEST_CELL + 2 + len("2026-11-30T09:12:00Z")
    assert name[: WIDEST_CELL - 1] + "…" in shown
    assert "bob" in shown


def test_short_cells_are_shown_whole() -> None:
    assert "sitecore\\bob" in table(["USER"], [["sitecore\\bob"]])
