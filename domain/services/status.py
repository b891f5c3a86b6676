"""What the administrator's screen shows: seats licensed and in use, licenses, agreement, policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from domain.agreement import Acceptance
from domain.ports import Store
from domain.seat_policy import OverLimitPolicy, refused_holders
from domain.seats import Seat
from domain.services.ledger import SeatCounts, count_seats
from domain.services.licenses import LicenseView


@dataclass(frozen=True)
class LedgerStatus:
    """The seat ledger at one instant."""

    counts: SeatCounts
    licenses: list[LicenseView]
    agreement: Acceptance | None
    policy: OverLimitPolicy = OverLimitPolicy.BLOCK_ALL
    # Under block-newest while over the limit: the holders refused, newest seat last.
    refused: list[Seat] = field(default_factory=list)


def describe_ledger(
    store: Store,
    now: datetime,
    grace_period: timedelta,
    policy: OverLimitPolicy = OverLimitPolicy.BLOCK_ALL,
) -> LedgerStatus:
    """The ledger as it stands at `now`, read without blocking enrolment."""
    with store.reading() as uow:
        licenses = uow.licenses.list()
        counts = count_seats(uow, now, grace_period)
        refused: list[Seat] = []
        if counts.over_limit_by and policy is OverLimitPolicy.BLOCK_NEWEST:
            refused = refused_holders(policy, uow.seats.list(), counts.licensed)
        return LedgerStatus(
            counts=counts,
            licenses=[LicenseView.of(license, now, grace_period) for license in licenses],
            agreement=uow.agreements.latest(),
            policy=policy,
            refused=refused,
        )
