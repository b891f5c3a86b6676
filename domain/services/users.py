"""The administrator gives seats to users and takes them back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.events import EventKind
from domain.ports import Store, UnitOfWork
from domain.refusals import Refused
from domain.seats import Assignment, Seat
from domain.services.agreement import require_agreement
from domain.services.ledger import SeatCounts, count_seats
from domain.usernames import InvalidUsername, display_username, normalize_username


def add_user(
    raw_name: str,
    added_by: str,
    store: Store,
    now: datetime,
    grace_period: timedelta,
    reserved: bool = False,
) -> SeatCounts:
    """Give `raw_name` a seat, if one is free (reserved with `reserved`); return the counts afterwards."""
    username = _read_name(raw_name)
    with store.writing() as uow:
        require_agreement(uow)
        before = count_seats(uow, now, grace_period)
        if uow.seats.holders([username]):
            raise Refused(f"{username} already holds a seat: nothing was changed.")
        after = _give_seat(uow, before, raw_name, username, added_by, now, reserved)
        uow.commit()
    return after


def reserve_user(
    raw_name: str, reserved_by: str, store: Store, now: datetime, grace_period: timedelta
) -> SeatCounts:
    """Reserve `raw_name`'s seat, giving them one first if they hold none and one is free."""
    username = _read_name(raw_name)
    with store.writing() as uow:
        require_agreement(uow)
        before = count_seats(uow, now, grace_period)
        holder = uow.seats.holders([username]).get(username)
        if holder is None:
            after = _give_seat(uow, before, raw_name, username, reserved_by, now, reserved=True)
        elif holder.reserved:
            raise Refused(f"{username} already holds a reserved seat: nothing was changed.")
        else:
            uow.seats.set_reserved(username, True)
            uow.events.record([before.event(EventKind.USER_RESERVED, now, reserved_by, username)])
            after = before
        uow.commit()
    return after


def unreserve_user(
    raw_name: str, released_by: str, store: Store, now: datetime, grace_period: timedelta
) -> SeatCounts:
    """Release `raw_name`'s reservation: they keep the seat, which may now be reclaimed when idle."""
    username = _read_name(raw_name)
    with store.writing() as uow:
        holder = uow.seats.holders([username]).get(username)
        if holder is None or not holder.reserved:
            what = "holds no seat" if holder is None else "holds a seat that is not reserved"
            raise Refused(f"{username} {what}: nothing was changed.")
        counts = count_seats(uow, now, grace_period)
        uow.seats.set_reserved(username, False)
        uow.events.record([counts.event(EventKind.USER_UNRESERVED, now, released_by, username)])
        uow.commit()
    return counts


def _give_seat(
    uow: UnitOfWork,
    before: SeatCounts,
    raw_name: str,
    username: str,
    given_by: str,
    now: datetime,
    reserved: bool,
) -> SeatCounts:
    """Add a manual seat if one is free, with its audit events; refuse otherwise."""
    if before.over_limit_by:
        must_go = before.over_limit_by + 1
        raise Refused(
            f"No seat is free for {username}: {before.in_use} users hold seats but the licenses grant "
            f"only {before.licensed}. Remove {must_go} users first, or add a license; "
            "nothing was changed."
        )
    if before.free == 0:
        raise Refused(
            f"No seat is free for {username}: all {before.licensed} seats are in use. Remove a user "
            "first, or add a license; nothing was changed."
        )
    seat = Seat(
        username=username,
        display_name=display_username(raw_name),
        assignment=Assignment.MANUAL,
        assigned_at=now,
        assigned_by=given_by,
        reserved=reserved,
    )
    uow.seats.add([seat])
    after = SeatCounts(before.licensed, before.in_use + 1)
    events = [before.event(EventKind.USER_ADDED, now, given_by, username, after)]
    if reserved:
        events.append(after.event(EventKind.USER_RESERVED, now, given_by, username))
    uow.events.record(events)
    return after


def remove_user(
    raw_name: str, removed_by: str, store: Store, now: datetime, grace_period: timedelta
) -> SeatCounts:
    """Take `raw_name`'s seat back; return the counts afterwards."""
    username = _read_name(raw_name)
    with store.writing() as uow:
        if not uow.seats.holders([username]):
            raise Refused(f"{username} holds no seat: check the name in the list of users.")
        before = count_seats(uow, now, grace_period)
        uow.seats.remove(username)
        after = SeatCounts(before.licensed, before.in_use - 1)
        uow.events.record([before.event(EventKind.USER_REMOVED, now, removed_by, username, after)])
        uow.commit()
    return after


@dataclass(frozen=True)
class UserPage:
    """One page of the users who hold seats, oldest seat first, and how many hold seats in all."""

    seats: list[Seat]
    total: int
    offset: int


def list_users(store: Store, limit: int | None = None, offset: int = 0, contains: str = "") -> UserPage:
    """The seat holders from `offset` on, at most `limit` of them (None: all).

    With `contains`, only those whose name contains it, compared as names are (case-folded);
    `total` then counts the matching holders.
    """
    needle = search_text(contains)
    with store.reading() as uow:
        if not needle:
            return UserPage(uow.seats.list(limit, offset), uow.seats.count(), offset)
        return UserPage(uow.seats.search(needle, limit, offset), uow.seats.count_matching(needle), offset)


@dataclass(frozen=True)
class Removal:
    """Several users removed at once: who lost a seat, who held none, and the counts afterwards."""

    removed: list[str]
    not_holding: list[str]
    counts: SeatCounts


def remove_users(
    raw_names: list[str], removed_by: str, store: Store, now: datetime, grace_period: timedelta
) -> Removal:
    """Take back the seats of several users in one transaction; names without a seat are reported."""
    names = list(dict.fromkeys(_read_name(raw) for raw in raw_names))
    if not names:
        raise Refused("Select the users to remove first.")
    with store.writing() as uow:
        holders = uow.seats.holders(names)
        counts = count_seats(uow, now, grace_period)
        events = []
        for username in names:
            if username not in holders:
                continue
            uow.seats.remove(username)
            after = SeatCounts(counts.licensed, counts.in_use - 1)
            events.append(counts.event(EventKind.USER_REMOVED, now, removed_by, username, after))
            counts = after
        uow.events.record(events)
        uow.commit()
    removed = [name for name in names if name in holders]
    return Removal(removed, [name for name in names if name not in holders], counts)


def search_text(contains: str) -> str:
    """What a search for part of a name looks for: the part as names are compared, or nothing."""
    try:
        return normalize_username(contains)
    except InvalidUsername:
        return ""


def _read_name(raw_name: object) -> str:
    try:
        return normalize_username(raw_name)
    except InvalidUsername as error:
        raise Refused(f"That user name cannot be used: {error}") from None
