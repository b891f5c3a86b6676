"""What the administrator's screen shows: seats licensed and in use, licenses, agreement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.agreement import Acceptance
from domain.ports import Store
from domain.services.ledger import SeatCounts, count_seats
from domain.services.licenses import LicenseView


@dataclass(frozen=True)
class LedgerStatus:
    """The seat ledger at one instant."""

    counts: SeatCounts
    licenses: list[LicenseView]
    agreement: Acceptance | None


def describe_ledger(store: Store, now: datetime, grace_period: timedelta) -> LedgerStatus:
    """The ledger as it stands at `now`, read without blocking enrolment."""
    with store.reading() as uow:
        licenses = uow.licenses.list()
        return LedgerStatus(
            counts=count_seats(uow, now, grace_period),
            licenses=[LicenseView.of(license, now, grace_period) for license in licenses],
            agreement=uow.agreements.latest(),
        )
