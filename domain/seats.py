"""Named-user seats: one per normalized user name."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

# Recording "last seen" on every editor start would turn the most frequent message
# into a write; once an hour is precise enough for the administrator's list.
LAST_SEEN_PRECISION = timedelta(hours=1)


class Assignment(StrEnum):
    """How a user came to hold a seat."""

    MANUAL = "manual"
    AUTOMATIC = "automatic"


@dataclass(frozen=True)
class Seat:
    """A user who holds a seat."""

    username: str
    display_name: str
    assignment: Assignment
    assigned_at: datetime
    assigned_by: str
    last_seen_at: datetime | None = None
    request_id: str | None = None
    # A reserved user keeps their seat whatever happens: never reclaimed, never refused as newest.
    reserved: bool = False


def worth_recording_start(last_seen_at: datetime | None, now: datetime) -> bool:
    """Whether a start at `now` should be written down as the user's last one."""
    return last_seen_at is None or now - last_seen_at >= LAST_SEEN_PRECISION


def seen_last(seat: Seat) -> datetime:
    """When the holder was last seen: their last start, or when they got the seat if never seen."""
    return seat.last_seen_at or seat.assigned_at


def may_be_reclaimed_soon(
    last_seen_at: datetime | None, now: datetime, reclaim_idle_after: timedelta
) -> bool:
    """Whether a holder's start must be recorded under the ledger's lock, not at a glance.

    Reclamation takes seats back under the lock; a start recorded without it could be
    answered "you hold a seat" by a read made just before the seat was reclaimed. Half the
    idle time is a wide margin for the clocks of the processes and a slow reclamation.
    """
    return last_seen_at is None or now - last_seen_at >= reclaim_idle_after / 2
