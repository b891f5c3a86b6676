"""Instants and durations, written one way everywhere."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cli.output import instant, when
from config.settings import parse_duration
from domain.moments import format_duration, format_instant


@pytest.mark.parametrize(
    ("duration", "written"),
    [
        (timedelta(days=3), "3d"),
        (timedelta(minutes=2), "2m"),
        (timedelta(hours=1, minutes=30), "1h 30m"),
        (timedelta(seconds=45), "45s"),
        (timedelta(milliseconds=500), "0.5s"),
        (timedelta(days=14, seconds=1), "14d 1s"),
        (timedelta(0), "0s"),
    ],
)
def test_a_duration_is_written_as_the_settings_take_it(duration: timedelta, written: str) -> None:
    assert format_duration(duration) == written
    if " " not in written and duration:
        assert parse_duration(written) == duration


def test_an_instant_is_written_one_way_in_messages_tables_and_json() -> None:
    moment = datetime(2027, 11, 30, 16, 37, 53, 419000, tzinfo=UTC)
    assert format_instant(moment) == "2027-11-30T16:37:53Z"
    assert when(moment) == instant(moment) == "2027-11-30T16:37:53Z"
