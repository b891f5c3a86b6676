"""Seat counts around a change, as the audit log records them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.events import AuditEvent, EventKind
from domain.licenses import seats_licensed
from domain.ports import UnitOfWork


@dataclass(frozen=True)
class SeatCounts:
    """Seats licensed and in use at one instant."""

    licensed: int
    in_use: int

    @property
    def free(self) -> int:
        """Seats that can still be granted."""
        return max(0, self.licensed - self.in_use)

    @property
    def over_limit_by(self) -> int:
        """How many more users hold seats than the licenses grant."""
        return max(0, self.in_use - self.licensed)

    def event(
        self,
        kind: EventKind,
        at: datetime,
        actor: str,
        subject: str,
        after: SeatCounts | None = None,
        detail: str = "",
    ) -> AuditEvent:
        """An audit event for a change from these counts to `after` (unchanged if None)."""
        after = after or self
        return AuditEvent(
            kind=kind,
            at=at,
            actor=actor,
            subject=subject,
            seats_total_before=self.licensed,
            seats_total_after=after.licensed,
            seats_used_before=self.in_use,
            seats_used_after=after.in_use,
            detail=detail,
        )


def count_seats(uow: UnitOfWork, now: datetime, grace_period: timedelta) -> SeatCounts:
    """Seats licensed at `now` and seats in use, as this unit of work sees them."""
    return SeatCounts(seats_licensed(uow.licenses.list(), now, grace_period), uow.seats.count())
