from datetime import UTC, datetime, timedelta

import pytest

from domain.enrolment import EnrolmentRequest, Outcome
from domain.events import EventKind
from domain.licenses import ServiceAnswer
from domain.ports import Verified
from domain.services.agreement import accept_agreement
from domain.services.enrolment import enrol_editors
from domain.services.licenses import add_license, remove_license
from domain.services.users import add_user, remove_user
from tests.fakes import FakeLicenseService, FakeStore

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
GRACE = timedelta(days=14)
EVERY = timedelta(days=3)


def licensed_store(*seats: int) -> FakeStore:
    store = FakeStore()
    accept_agreement("admin", store, NOW, GRACE)
    for number, count in enumerate(seats):
        key = f"AVTR-{number:04d}"
        service = FakeLicenseService(
            {key: Verified(ServiceAnswer(key, "active", count, NOW + timedelta(days=365), NOW))}
        )
        add_license(key, "admin", store, service, NOW, GRACE, EVERY)
    return store


def start(store: FakeStore, *names: str, request_id: str | None = None, at: datetime = NOW) -> list[Outcome]:
    requests = [EnrolmentRequest(name.lower(), name, request_id) for name in names]
    return [decision.outcome for decision in enrol_editors(requests, store, at, GRACE)]


def test_first_start_of_an_editor_claims_a_free_seat() -> None:
    store = licensed_store(2)
    assert start(store, "bob") == [Outcome.GRANTED]
    assert store.ledger.seats["bob"].assigned_by == "editor-start"


def test_second_start_of_the_same_editor_takes_no_second_seat_and_writes_nothing() -> None:
    store = licensed_store(2)
    start(store, "bob")
    writes = store.writes
    assert start(store, "bob", at=NOW + timedelta(minutes=5)) == [Outcome.ALREADY_ENROLLED]
    assert len(store.ledger.seats) == 1
    assert store.writes == writes
    assert store.touches == []


def test_last_seen_is_written_only_when_an_hour_has_passed() -> None:
    store = licensed_store(2)
    start(store, "bob")
    later = NOW + timedelta(hours=2)
    start(store, "bob", at=later)
    assert store.ledger.seats["bob"].last_seen_at == later


def test_an_editor_is_refused_when_every_seat_is_taken() -> None:
    store = licensed_store(2)
    assert start(store, "ann", "bob", "cid") == [Outcome.GRANTED, Outcome.GRANTED, Outcome.NO_SEATS]
    refusal = store.ledger.events[-1]
    assert (refusal.kind, refusal.outcome, refusal.subject) == (EventKind.SEAT_REFUSED, "no_seats", "cid")


def test_nobody_may_use_avtor_while_over_limit() -> None:
    store = licensed_store(2, 1)
    start(store, "ann", "bob", "cid")
    remove_license("AVTR-0001", "admin", store, NOW, GRACE)
    assert start(store, "ann", "bob", "dan") == [Outcome.OVER_LIMIT, Outcome.OVER_LIMIT, Outcome.NO_SEATS]
    remove_user("cid", "admin", store, NOW, GRACE)
    assert start(store, "ann", "bob") == [Outcome.ALREADY_ENROLLED, Outcome.ALREADY_ENROLLED]


def test_a_repeated_request_id_changes_nothing() -> None:
    store = licensed_store(1)
    assert start(store, "bob", request_id="r-1") == [Outcome.GRANTED]
    assert start(store, "bob", request_id="r-1") == [Outcome.GRANTED]
    assert start(store, "ann", request_id="r-2") == [Outcome.NO_SEATS]
    remove_user("bob", "admin", store, NOW, GRACE)
    events = len(store.ledger.events)
    assert start(store, "ann", request_id="r-2") == [Outcome.NO_SEATS]
    assert len(store.ledger.events) == events
    assert start(store, "ann", request_id="r-3") == [Outcome.GRANTED]


def test_a_request_id_reused_for_another_user_is_an_invalid_request() -> None:
    store = licensed_store(3)
    start(store, "bob", request_id="r-1")
    assert start(store, "ann", request_id="r-1") == [Outcome.INVALID_REQUEST]
    assert "ann" not in store.ledger.seats


def test_a_batch_decides_in_order_and_never_oversells() -> None:
    store = licensed_store(3)
    outcomes = start(store, "a", "b", "A", "c", "d", "b", "e")
    assert outcomes == [
        Outcome.GRANTED,
        Outcome.GRANTED,
        Outcome.ALREADY_ENROLLED,
        Outcome.GRANTED,
        Outcome.NO_SEATS,
        Outcome.ALREADY_ENROLLED,
        Outcome.NO_SEATS,
    ]
    assert sorted(store.ledger.seats) == ["a", "b", "c"]


def test_a_grant_is_recorded_with_the_counts_around_it() -> None:
    store = licensed_store(5)
    start(store, "bob", request_id="r-1")
    event = store.ledger.events[-1]
    assert (event.kind, event.request_id) == (EventKind.SEAT_GRANTED, "r-1")
    assert (event.seats_total_before, event.seats_used_before, event.seats_used_after) == (5, 0, 1)


def test_without_licenses_the_message_says_to_add_one() -> None:
    store = licensed_store()
    [decision] = enrol_editors([EnrolmentRequest("bob", "bob")], store, NOW, GRACE)
    assert decision.outcome is Outcome.NO_SEATS
    assert "No Avtor licenses are available" in decision.message


def test_an_expired_license_stops_granting_at_its_expiry() -> None:
    store = licensed_store(1)
    assert start(store, "bob", at=NOW + timedelta(days=366)) == [Outcome.NO_SEATS]


def test_manual_seats_count_like_automatic_ones() -> None:
    store = licensed_store(1)
    add_user("sitecore\\Ann", "admin", store, NOW, GRACE)
    assert start(store, "bob") == [Outcome.NO_SEATS]
    assert start(store, "SITECORE\\ann") == [Outcome.ALREADY_ENROLLED]


@pytest.mark.parametrize("batch", [1, 3, 10])
def test_batches_of_any_size_agree_with_one_at_a_time(batch: int) -> None:
    names = [f"user{index % 13}" for index in range(40)]
    one_by_one, batched = licensed_store(7), licensed_store(7)
    expected = [outcome for name in names for outcome in start(one_by_one, name)]
    got = [outcome for i in range(0, len(names), batch) for outcome in start(batched, *names[i : i + batch])]
    assert got == expected


def test_a_start_sent_again_while_over_limit_is_refused_like_every_other() -> None:
    store = licensed_store(2, 1)
    start(store, "ann", "bob")
    assert start(store, "cid", request_id="r-1") == [Outcome.GRANTED]
    remove_license("AVTR-0001", "admin", store, NOW, GRACE)

    [again] = enrol_editors([EnrolmentRequest("cid", "cid", "r-1")], store, NOW, GRACE)

    assert (again.outcome, again.allowed, again.seats_used, again.seats_total) == (
        Outcome.OVER_LIMIT,
        False,
        3,
        2,
    )
    refusal = store.ledger.events[-1]
    assert (refusal.kind, refusal.outcome, refusal.subject) == (EventKind.SEAT_REFUSED, "over_limit", "cid")
    assert (refusal.request_id, refusal.detail) == (None, "request r-1 sent again")


def test_a_start_sent_again_after_its_seat_was_taken_back_is_decided_anew() -> None:
    store = licensed_store(1)
    assert start(store, "bob", request_id="r-1") == [Outcome.GRANTED]
    remove_user("bob", "admin", store, NOW, GRACE)
    add_user("ann", "admin", store, NOW, GRACE)
    assert start(store, "bob", request_id="r-1") == [Outcome.NO_SEATS]
    assert "bob" not in store.ledger.seats

    remove_user("ann", "admin", store, NOW, GRACE)
    assert start(store, "bob", request_id="r-1") == [Outcome.GRANTED]
    events = len(store.ledger.events)
    assert start(store, "bob", request_id="r-1") == [Outcome.GRANTED]
    assert list(store.ledger.seats) == ["bob"]
    assert len(store.ledger.events) == events


def test_in_a_mixed_batch_holders_are_answered_at_a_glance_and_the_rest_in_one_transaction() -> None:
    store = licensed_store(3)
    start(store, "ann")
    writes = store.writes
    requests = [EnrolmentRequest(name, name) for name in ("ann", "bob", "cid", "ann", "bob")]
    decisions = enrol_editors(requests, store, NOW, GRACE)
    assert [decision.outcome for decision in decisions] == [
        Outcome.ALREADY_ENROLLED,
        Outcome.GRANTED,
        Outcome.GRANTED,
        Outcome.ALREADY_ENROLLED,
        Outcome.ALREADY_ENROLLED,
    ]
    assert store.writes == writes + 1
    # ann, who held her seat, was answered from the glance before the claims: 1 seat in use.
    assert [decision.seats_used for decision in decisions] == [1, 2, 3, 1, 3]
