"""Reading the audit log, and the report of who holds seats for the vendor's true-up or an audit."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.events import AuditEvent, EventKind, EventTally
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


# What editors' starts and the license checks record; every other kind is an administrator's change.
STARTS_AND_CHECKS = (EventKind.SEAT_GRANTED, EventKind.SEAT_REFUSED, EventKind.LICENSE_REFRESHED)
ADMINISTRATOR_CHANGES = tuple(kind for kind in EventKind if kind not in STARTS_AND_CHECKS)
# The default view lists each of these groups' latest events, so that none crowds out the others.
LISTED_GROUPS = (ADMINISTRATOR_CHANGES, (EventKind.LICENSE_REFRESHED,), (EventKind.SEAT_GRANTED,))


@dataclass(frozen=True)
class AuditOverview:
    """The audit log at a glance: changes and grants one by one, refused starts counted."""

    # The latest administrator changes, the latest license checks and the latest seat
    # grants (up to the limit of each), oldest first.
    events: list[AuditEvent]
    # Refused starts per editor and outcome, the most recently refused first.
    refused_starts: list[EventTally]


def audit_overview(store: Store, limit: int) -> AuditOverview:
    """The default view: however many editors' starts were refused, the administrators' changes show."""
    with store.reading() as uow:
        listed = [event for kinds in LISTED_GROUPS for event in uow.events.list(kinds, limit=limit)]
        refused = uow.events.tally(EventKind.SEAT_REFUSED, limit)
    listed.sort(key=lambda event: event.id or 0)  # the order they were recorded in
    return AuditOverview(listed, refused)


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
