"""Idle-seat reclamation: seats of editors not seen for long go back to the pool.

Off unless the administrator sets how long "idle" is. Reserved users are never
reclaimed. Seats are taken back in one transaction holding the ledger's lock, so a
start decided meanwhile either came first (it recorded the editor as seen, and the
seat is not idle any more) or comes after (the editor goes through the seat gate
like a new one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.events import EventKind
from domain.moments import format_instant
from domain.ports import Store
from domain.seats import Seat, seen_last
from domain.services.ledger import SeatCounts, count_seats
from domain.services.users import UserPage, search_text

RECLAIMER = "idle-seat-reclamation"


@dataclass(frozen=True)
class Reclaimed:
    """A seat taken back: whose, and when they were last seen."""

    username: str
    display_name: str
    last_seen: datetime
    ever_seen: bool


def idle_users(store: Store, now: datetime, idle_after: timedelta) -> list[Seat]:
    """The holders who would lose their seat to reclamation at `now`, longest idle first."""
    with store.reading() as uow:
        return uow.seats.idle(now - idle_after)


def idle_page(store: Store, now: datetime, idle_after: timedelta, contains: str = "") -> UserPage:
    """The idle holders (as `idle_users`) whose name contains `contains`, all on one page."""
    needle = search_text(contains)
    idle = [seat for seat in idle_users(store, now, idle_after) if needle in seat.username]
    return UserPage(idle, len(idle), 0)


def reclaim_idle_seats(
    store: Store, now: datetime, idle_after: timedelta, grace_period: timedelta
) -> tuple[list[Reclaimed], SeatCounts]:
    """Take back, under the ledger's lock, the seats of unreserved holders idle for `idle_after`."""
    with store.writing() as uow:
        idle = uow.seats.idle(now - idle_after)
        counts = count_seats(uow, now, grace_period)
        events = []
        for seat in idle:
            uow.seats.remove(seat.username)
            after = SeatCounts(counts.licensed, counts.in_use - 1)
            events.append(
                counts.event(EventKind.SEAT_RECLAIMED, now, RECLAIMER, seat.username, after, _detail(seat))
            )
            counts = after
        if events:
            uow.events.record(events)
            uow.commit()
    reclaimed = [
        Reclaimed(seat.username, seat.display_name, seen_last(seat), seat.last_seen_at is not None)
        for seat in idle
    ]
    return reclaimed, counts


def _detail(seat: Seat) -> str:
    if seat.last_seen_at is None:
        return f"never seen; seat assigned at {format_instant(seat.assigned_at)}"
    return f"last seen at {format_instant(seat.last_seen_at)}"
