"""`avtorlm user add|list|remove|reserve|unreserve|idle`."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from cli.agreement import require_acceptance
from cli.context import Context
from cli.output import emit_json, instant, say, table, users_hold, when
from config.settings import parse_duration
from domain.refusals import Refused
from domain.seats import Seat
from domain.services.ledger import SeatCounts
from domain.services.reclamation import idle_users
from domain.services.users import add_user, list_users, remove_user, reserve_user, unreserve_user
from tasks.messages import counts_message

DEFAULT_PAGE = 100
USER_HEADERS = ["USER", "SINCE", "ASSIGNED", "BY", "LAST SEEN", "RESERVED"]


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the `user` commands."""
    user = commands.add_parser("user", help="give seats to users, list them, take seats back")
    actions = user.add_subparsers(dest="action", required=True, metavar="ACTION")

    add = actions.add_parser("add", parents=[common], help="give a user a seat, if one is free")
    add.add_argument("name", metavar="NAME", help="the CMS user name, e.g. 'sitecore\\bob'")
    add.add_argument("--reserve", action="store_true", help="reserve the seat at once (never reclaimed)")
    add.set_defaults(run=add_seat_holder)

    listing = actions.add_parser("list", parents=[common], help="who holds seats, since when, how assigned")
    listing.add_argument(
        "--limit",
        type=_count(minimum=1),
        default=DEFAULT_PAGE,
        metavar="N",
        help=f"show at most N users (default {DEFAULT_PAGE})",
    )
    listing.add_argument(
        "--offset", type=_count(minimum=0), default=0, metavar="N", help="skip the first N users"
    )
    listing.add_argument("--all", action="store_true", help="show every user, however many")
    listing.set_defaults(run=list_seat_holders)

    remove = actions.add_parser("remove", parents=[common], help="take a user's seat back")
    remove.add_argument("name", metavar="NAME", help="the CMS user name")
    remove.set_defaults(run=remove_seat_holder)

    reserve = actions.add_parser(
        "reserve", parents=[common], help="reserve a user's seat (given one first if free): never reclaimed"
    )
    reserve.add_argument("name", metavar="NAME", help="the CMS user name")
    reserve.set_defaults(run=reserve_seat_holder)

    unreserve = actions.add_parser("unreserve", parents=[common], help="release a user's reservation")
    unreserve.add_argument("name", metavar="NAME", help="the CMS user name")
    unreserve.set_defaults(run=unreserve_seat_holder)

    idle = actions.add_parser(
        "idle", parents=[common], help="who would lose a seat to idle-seat reclamation (changes nothing)"
    )
    idle.add_argument(
        "--for",
        dest="idle_for",
        metavar="TIME",
        help="not seen for this long, e.g. 90d (default: AVTOR_RECLAIM_IDLE_AFTER)",
    )
    idle.set_defaults(run=list_idle_users)


def add_seat_holder(arguments: argparse.Namespace, context: Context) -> int:
    """Give the named user a seat."""
    require_acceptance(context)
    counts = add_user(
        arguments.name,
        context.actor,
        context.store(),
        context.now(),
        context.settings.grace_period,
        reserved=arguments.reserve,
    )
    held = "a reserved seat" if arguments.reserve else "a seat"
    return _changed(context, f"{arguments.name.strip()} now holds {held}.", counts)


def reserve_seat_holder(arguments: argparse.Namespace, context: Context) -> int:
    """Reserve the named user's seat, giving them one if they hold none."""
    require_acceptance(context)
    counts = reserve_user(
        arguments.name, context.actor, context.store(), context.now(), context.settings.grace_period
    )
    return _changed(context, f"{arguments.name.strip()} now holds a reserved seat.", counts)


def unreserve_seat_holder(arguments: argparse.Namespace, context: Context) -> int:
    """Release the named user's reservation; they keep their seat."""
    require_acceptance(context)
    counts = unreserve_user(
        arguments.name, context.actor, context.store(), context.now(), context.settings.grace_period
    )
    message = f"{arguments.name.strip()} keeps a seat, no longer reserved: it may be reclaimed when idle."
    return _changed(context, message, counts)


def remove_seat_holder(arguments: argparse.Namespace, context: Context) -> int:
    """Take the named user's seat back."""
    require_acceptance(context)
    counts = remove_user(
        arguments.name, context.actor, context.store(), context.now(), context.settings.grace_period
    )
    return _changed(context, f"{arguments.name.strip()} no longer holds a seat.", counts)


def list_seat_holders(arguments: argparse.Namespace, context: Context) -> int:
    """Print a page of the users who hold seats, oldest seat first."""
    limit = None if arguments.all else arguments.limit
    page = list_users(context.store(), limit, arguments.offset)
    if context.json:
        emit_json(
            {
                "total": page.total,
                "offset": page.offset,
                "limit": limit,
                "users": [seat_document(seat) for seat in page.seats],
            }
        )
        return 0
    if page.total == 0:
        say("Nobody holds a seat yet: seats go to editors when they start Avtor, or `avtorlm user add NAME`.")
        return 0
    if not page.seats:
        say(f"{users_hold(page.total)}: --offset {page.offset} is past the last of them.")
        return 0
    say(table(USER_HEADERS, [_seat_row(seat) for seat in page.seats]))
    shown_to = page.offset + len(page.seats)
    say(f"\n{users_hold(page.total)}; shown: {page.offset + 1} to {shown_to}.")
    if shown_to < page.total:
        say(f"Next page: avtorlm user list --offset {shown_to}" + (f" --limit {limit}" if limit else ""))
    return 0


def list_idle_users(arguments: argparse.Namespace, context: Context) -> int:
    """Print the unreserved holders not seen for the given time: those reclamation would take back."""
    idle_for = _idle_time(arguments.idle_for, context)
    idle = idle_users(context.store(), context.now(), idle_for)
    if context.json:
        emit_json({"idle_for_seconds": idle_for.total_seconds(), "users": [seat_document(s) for s in idle]})
        return 0
    if not idle:
        say("No unreserved seat holder has been idle that long: reclamation would take back no seat.")
        return 0
    say(table(USER_HEADERS, [_seat_row(seat) for seat in idle]))
    who = "1 seat holder" if len(idle) == 1 else f"{len(idle)} seat holders"
    say(f"\n{who} not seen that long: reclamation would take these seats back.")
    return 0


def _idle_time(text: str | None, context: Context) -> timedelta:
    if text is None:
        if context.settings.reclaim_idle_after is None:
            raise Refused("Say how long, e.g. --for 90d: AVTOR_RECLAIM_IDLE_AFTER is not set.")
        return context.settings.reclaim_idle_after
    try:
        return parse_duration(text)
    except ValueError as error:
        raise Refused(f"--for {text}: {error}.") from None


def seat_document(seat: Seat) -> dict[str, Any]:
    """One seat holder as JSON."""
    return {
        "username": seat.username,
        "display_name": seat.display_name,
        "assignment": seat.assignment.value,
        "assigned_at": instant(seat.assigned_at),
        "assigned_by": seat.assigned_by,
        "last_seen_at": instant(seat.last_seen_at),
        "reserved": seat.reserved,
    }


def _seat_row(seat: Seat) -> list[str]:
    return [
        seat.display_name,
        when(seat.assigned_at),
        seat.assignment.value,
        seat.assigned_by,
        when(seat.last_seen_at),
        "yes" if seat.reserved else "",
    ]


def _changed(context: Context, message: str, counts: SeatCounts) -> int:
    if context.json:
        emit_json({"ok": True, "message": message, **counts_message(counts)})
    else:
        say(message)
        say(f"Seats: {counts.licensed} licensed, {counts.in_use} in use, {counts.free} free.")
    return 0


def _count(minimum: int) -> Any:
    def read(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of {minimum} or more")
        return value

    return read
