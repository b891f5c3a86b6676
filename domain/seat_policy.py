"""What happens when more users hold seats than the licenses grant: the over-limit policy.

`block-all` (the default, in the product's own words): nobody may use Avtor until users
are removed or licenses added. `block-newest`: only the users who took a seat last,
beyond the licensed count, are refused; reserved users never are, so a lost license
does not stop a whole newsroom while the administrator sorts it out.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from domain.seats import Seat


class OverLimitPolicy(StrEnum):
    """Who is refused while more users hold seats than licensed."""

    BLOCK_ALL = "block-all"
    BLOCK_NEWEST = "block-newest"

    def describe(self) -> str:
        """The policy in one sentence for the administrator."""
        if self is OverLimitPolicy.BLOCK_ALL:
            return "over the limit, nobody may use Avtor until users are removed or licenses added"
        return (
            "over the limit, only the users who took a seat last, beyond the licensed count, are refused "
            "(reserved users never)"
        )


def is_over_limit(seats_used: int, seats_total: int) -> bool:
    """Whether more users hold seats than the licenses grant."""
    return seats_used > seats_total


def holder_refused(policy: OverLimitPolicy, seats_used: int, seats_total: int, among_newest: bool) -> bool:
    """Whether a seat holder is refused; `among_newest`: they are among `refused_holders`."""
    if not is_over_limit(seats_used, seats_total):
        return False
    return policy is OverLimitPolicy.BLOCK_ALL or among_newest


def seat_order(seat: Seat) -> tuple[bool, object, str]:
    """The order in which holders keep their seats under block-newest: reserved, then oldest seat first."""
    return (not seat.reserved, seat.assigned_at, seat.username)


def refused_holders(policy: OverLimitPolicy, holders: Iterable[Seat], seats_total: int) -> list[Seat]:
    """The seat holders refused under `policy`, given every holder; none unless over the limit."""
    seats = sorted(holders, key=seat_order)
    if not is_over_limit(len(seats), seats_total):
        return []
    if policy is OverLimitPolicy.BLOCK_ALL:
        return seats
    return [seat for seat in seats[max(seats_total, 0) :] if not seat.reserved]
