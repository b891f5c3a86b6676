"""Instants in time: always timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


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


def format_instant(moment: datetime, timespec: str = "seconds") -> str:
    """Write an instant as RFC 3339 UTC with a Z: to the second, the one way times are written."""
    text = require_utc(moment).isoformat(timespec=timespec)
    return text.replace("+00:00", "Z")


def format_duration(duration: timedelta) -> str:
    """Write a duration the way the settings take it: `3d`, `1h 30m`, `45s`, `0.5s`."""
    total = duration.total_seconds()
    if total < 60 and total != int(total):
        return f"{total:g}s"
    seconds = round(total)
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts)
