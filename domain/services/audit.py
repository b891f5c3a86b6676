"""Reading the audit log, and the report of who holds seats for the vendor's true-up or an audit."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.events import AuditEvent, EventKind
from domain.ports import Store
from domain.seats import Seat
from domain.services.ledger import SeatCounts, count_seats
from domain.services.licenses import LicenseView


@dataclass(frozen=True)
class SeatReport:
    """Who holds seats in this installation, with the licenses that grant them, at one instant."""

    installation_id: str
    generated_at: datetime
    counts: SeatCounts
    licenses: list[LicenseView]
    holders: list[Seat]


def audit_log(
    store: Store,
    kinds: Collection[EventKind] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> list[AuditEvent]:
    """Events of `kinds` (all if empty) from `since` to before `until`: the latest `limit`, oldest first."""
    with store.reading() as uow:
        return uow.events.list(kinds, since, until, limit)


def seat_report(store: Store, now: datetime, grace_period: timedelta) -> SeatReport:
    """Every seat holder, the counts and the licenses, read from one consistent snapshot."""
    with store.reading() as uow:
        return SeatReport(
            installation_id=uow.installation_id,
            generated_at=now,
            counts=count_seats(uow, now, grace_period),
            licenses=[LicenseView.of(license, now, grace_period) for license in uow.licenses.list()],
            holders=uow.seats.list(),
        )
