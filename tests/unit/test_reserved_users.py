"""Reserved users: the administrator reserves a seat, which is then always kept."""

from datetime import UTC, datetime, timedelta

import pytest

from domain.events import EventKind
from domain.licenses import ServiceAnswer
from domain.ports import Verified
from domain.refusals import Refused
from domain.services.agreement import accept_agreement
from domain.services.licenses import add_license
from domain.services.users import add_user, reserve_user, unreserve_user
from tests.fakes import FakeLicenseService, FakeStore

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
GRACE = timedelta(days=14)


def licensed_store(seats: int) -> FakeStore:
    store = FakeStore()
    accept_agreement("admin", store, NOW, GRACE)
    key = "AVTR-0001"
    answer = ServiceAnswer(key, "active", seats, NOW + timedelta(days=365), NOW)
    add_license(
        key, "admin", store, FakeLicenseService({key: Verified(answer)}), NOW, GRACE, timedelta(days=3)
    )
    return store


def kinds(store: FakeStore) -> list[EventKind]:
    return [event.kind for event in store.ledger.events if event.kind.value.startswith("user_")]


def test_reserving_a_holder_keeps_their_seat_and_records_it() -> None:
    store = licensed_store(2)
    add_user("Bob", "ada", store, NOW, GRACE)
    counts = reserve_user(" BOB ", "ada", store, NOW, GRACE)
    assert store.ledger.seats["bob"].reserved
    assert counts.in_use == 1
    assert kinds(store) == [EventKind.USER_ADDED, EventKind.USER_RESERVED]
    assert store.ledger.events[-1].actor == "ada"


def test_reserving_a_user_without_a_seat_gives_them_one_if_free() -> None:
    store = licensed_store(1)
    counts = reserve_user("sitecore\\Ann", "ada", store, NOW, GRACE)
    seat = store.ledger.seats["sitecore\\ann"]
    assert seat.reserved and seat.display_name == "sitecore\\Ann"
    assert counts.in_use == 1
    assert kinds(store) == [EventKind.USER_ADDED, EventKind.USER_RESERVED]


def test_reserving_a_user_without_a_seat_when_none_is_free_is_refused_and_changes_nothing() -> None:
    store = licensed_store(1)
    add_user("bob", "ada", store, NOW, GRACE)
    with pytest.raises(Refused, match="No seat is free for ann"):
        reserve_user("ann", "ada", store, NOW, GRACE)
    assert "ann" not in store.ledger.seats
    assert kinds(store) == [EventKind.USER_ADDED]


def test_reserving_twice_is_refused() -> None:
    store = licensed_store(1)
    reserve_user("bob", "ada", store, NOW, GRACE)
    with pytest.raises(Refused, match="already holds a reserved seat"):
        reserve_user("bob", "ada", store, NOW, GRACE)


def test_a_user_added_with_reserve_is_reserved_at_once() -> None:
    store = licensed_store(1)
    add_user("bob", "ada", store, NOW, GRACE, reserved=True)
    assert store.ledger.seats["bob"].reserved
    assert kinds(store) == [EventKind.USER_ADDED, EventKind.USER_RESERVED]


def test_unreserving_keeps_the_seat_but_releases_the_reservation() -> None:
    store = licensed_store(1)
    reserve_user("bob", "ada", store, NOW, GRACE)
    counts = unreserve_user("bob", "ada", store, NOW, GRACE)
    assert not store.ledger.seats["bob"].reserved
    assert counts.in_use == 1
    assert kinds(store)[-1] is EventKind.USER_UNRESERVED


@pytest.mark.parametrize("reserved_before", [False, None])
def test_unreserving_a_user_not_reserved_is_refused(reserved_before: bool | None) -> None:
    store = licensed_store(1)
    if reserved_before is not None:
        add_user("bob", "ada", store, NOW, GRACE)
    with pytest.raises(Refused, match="bob holds"):
        unreserve_user("bob", "ada", store, NOW, GRACE)
