"""Setting up a store for end-to-end tests, and reading it afterwards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adapters.sql import SqlStore, create_store_engine
from domain.licenses import ServiceAnswer
from domain.ports import Verified
from domain.services.agreement import accept_agreement
from domain.services.licenses import add_license
from tests.fakes import FakeLicenseService

GRACE = timedelta(days=14)


def seed_licenses(url: str, **seats_by_key: int) -> None:
    """Accept the agreement and add licenses granting `seats_by_key` (validated by a stand-in service)."""
    store = SqlStore(create_store_engine(url))
    now = datetime.now(UTC)
    accept_agreement("test administrator", store, now, GRACE)
    for key, seats in seats_by_key.items():
        answer = ServiceAnswer(key, "active", seats, now + timedelta(days=365), now, "Test Corp")
        add_license(
            key,
            "test administrator",
            store,
            FakeLicenseService({key: Verified(answer)}),
            now,
            GRACE,
            timedelta(days=3),
        )
    store.engine.dispose()


def seat_holders(url: str) -> tuple[set[str], int, int]:
    """The users holding seats, the ledger's counter, and the number of seat rows."""
    store = SqlStore(create_store_engine(url))
    with store.reading() as uow:
        holders = {seat.username for seat in uow.seats.list()}
        counted, rows = uow.seats.count(), uow.seats.total_rows()
    store.engine.dispose()
    return holders, counted, rows
