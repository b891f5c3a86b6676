"""Instants in time: always timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """The current instant, in UTC."""
    return datetime.now(UTC)


def require_utc(moment: datetime) -> datetime:
    """Return `moment` in UTC; a naive datetime is a programming error."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: every instant must carry a time zone")
    return moment.astimezone(UTC)


def parse_instant(text: str) -> datetime:
    """Read an RFC 3339 instant such as 2027-06-30T23:59:59Z; it must carry an offset."""
    value = datetime.fromisoformat(text.strip().replace("z", "Z"))
    return require_utc(value)


def format_instant(moment: datetime, timespec: str = "auto") -> str:
    """Write an instant as RFC 3339 UTC with a Z, to the second or finer."""
    text = require_utc(moment).isoformat(timespec=timespec)
    return text.replace("+00:00", "Z")
