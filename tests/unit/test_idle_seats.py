"""Idle-seat reclamation: who is idle, taking their seats back, and starting again afterwards."""

from datetime import UTC, datetime, timedelta

import pytest

from config import SettingsError, load_settings
from domain.enrolment import EnrolmentRequest, Outcome
from domain.events import EventKind
from domain.licenses import ServiceAnswer
from domain.ports import Verified
from domain.seats import Assignment, Seat
from domain.services.agreement import accept_agreement
from domain.services.enrolment import enrol_editors
from domain.services.licenses import add_license
from domain.services.reclamation import idle_users, reclaim_idle_seats
from tests.fakes import FakeLicenseService, FakeStore
from worker.app import ADMIN_QUEUE, create_app
from worker.schedule import RECLAIM_IDLE

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
GRACE = timedelta(days=14)
IDLE = timedelta(days=90)


def store_with(*seats: Seat, licensed: int = 3) -> FakeStore:
    store = FakeStore()
    accept_agreement("admin", store, NOW, GRACE)
    key = "AVTR-0001"
    answer = ServiceAnswer(key, "active", licensed, NOW + timedelta(days=365), NOW)
    add_license(
        key, "admin", store, FakeLicenseService({key: Verified(answer)}), NOW, GRACE, timedelta(days=3)
    )
    for seat in seats:
        store.ledger.seats[seat.username] = seat
    return store


def seat(name: str, seen_days_ago: int | None, seated_days_ago: int = 400, reserved: bool = False) -> Seat:
    seen = None if seen_days_ago is None else NOW - timedelta(days=seen_days_ago)
    seated = NOW - timedelta(days=seated_days_ago)
    return Seat(name, name.title(), Assignment.AUTOMATIC, seated, "editor-start", seen, None, reserved)


def test_idle_users_are_the_unreserved_holders_not_seen_for_that_long_idlest_first() -> None:
    store = store_with(
        seat("ann", 100),
        seat("bob", 10),
        seat("cid", None, seated_days_ago=95),
        seat("dan", 200, reserved=True),
        seat("eve", None, seated_days_ago=5),
    )
    assert [s.username for s in idle_users(store, NOW, IDLE)] == ["ann", "cid"]


def test_reclaiming_takes_idle_seats_back_with_an_audit_event_saying_when_each_was_last_seen() -> None:
    store = store_with(seat("ann", 100), seat("bob", 10), seat("cid", None, seated_days_ago=95))
    reclaimed, counts = reclaim_idle_seats(store, NOW, IDLE, GRACE)
    assert [r.username for r in reclaimed] == ["ann", "cid"]
    assert set(store.ledger.seats) == {"bob"}
    assert (counts.licensed, counts.in_use) == (3, 1)
    events = [e for e in store.ledger.events if e.kind is EventKind.SEAT_RECLAIMED]
    assert [(e.subject, e.seats_used_before, e.seats_used_after) for e in events] == [
        ("ann", 3, 2),
        ("cid", 2, 1),
    ]
    assert events[0].detail == "last seen at 2026-08-21T12:00:00Z"
    assert events[1].detail == "never seen; seat assigned at 2026-08-26T12:00:00Z"


def test_reclaiming_with_nothing_idle_writes_nothing() -> None:
    store = store_with(seat("bob", 10))
    writes = store.writes
    assert reclaim_idle_seats(store, NOW, IDLE, GRACE)[0] == []
    assert store.writes == writes


def test_a_reserved_user_is_never_reclaimed() -> None:
    store = store_with(seat("dan", 1000, reserved=True))
    reclaim_idle_seats(store, NOW, IDLE, GRACE)
    assert "dan" in store.ledger.seats


def test_a_reclaimed_editor_starting_again_is_granted_a_free_seat_like_a_new_one() -> None:
    store = store_with(seat("ann", 100), seat("bob", 10), licensed=2)
    reclaim_idle_seats(store, NOW, IDLE, GRACE)
    (decision,) = enrol_editors([EnrolmentRequest("ann", "Ann")], store, NOW, GRACE, reclaim_idle_after=IDLE)
    assert decision.outcome is Outcome.GRANTED
    assert store.ledger.seats["ann"].last_seen_at == NOW


def test_a_reclaimed_editor_starting_again_when_no_seat_is_free_is_refused_like_a_new_one() -> None:
    store = store_with(seat("ann", 100), seat("bob", 10), licensed=2)
    reclaim_idle_seats(store, NOW, IDLE, GRACE)
    enrol_editors([EnrolmentRequest("cid", "cid")], store, NOW, GRACE)
    (decision,) = enrol_editors([EnrolmentRequest("ann", "Ann")], store, NOW, GRACE, reclaim_idle_after=IDLE)
    assert decision.outcome is Outcome.NO_SEATS


def test_with_reclamation_on_a_holder_unseen_for_long_is_recorded_as_seen_under_the_lock() -> None:
    store = store_with(seat("ann", 60), seat("bob", 10))
    writes = store.writes
    decisions = enrol_editors(
        [EnrolmentRequest("ann", "Ann"), EnrolmentRequest("bob", "Bob")],
        store,
        NOW,
        GRACE,
        reclaim_idle_after=IDLE,
    )
    assert [d.outcome for d in decisions] == [Outcome.ALREADY_ENROLLED, Outcome.ALREADY_ENROLLED]
    assert store.writes == writes + 1  # ann: seen in the locked transaction
    assert store.ledger.seats["ann"].last_seen_at == NOW
    assert store.touches == [(frozenset({"bob"}), NOW)]  # bob: recorded at a glance, as before


def test_with_reclamation_off_holders_are_answered_at_a_glance_as_before() -> None:
    store = store_with(seat("ann", 60))
    writes = store.writes
    enrol_editors([EnrolmentRequest("ann", "Ann")], store, NOW, GRACE)
    assert store.writes == writes
    assert store.touches == [(frozenset({"ann"}), NOW)]


@pytest.mark.parametrize(
    ("text", "expected"), [("90d", timedelta(days=90)), ("", None), ("P2D", timedelta(days=2))]
)
def test_the_idle_time_is_read_from_the_environment(text: str, expected: timedelta | None) -> None:
    assert load_settings(reclaim_idle_after=text).reclaim_idle_after == expected


def test_an_idle_time_shorter_than_a_day_is_refused() -> None:
    with pytest.raises(SettingsError, match="AVTOR_RECLAIM_IDLE_AFTER"):
        load_settings(reclaim_idle_after="12h")


def test_beat_reclaims_idle_seats_only_when_turned_on_and_on_the_admin_queue() -> None:
    assert RECLAIM_IDLE not in {e["task"] for e in create_app(load_settings()).conf.beat_schedule.values()}
    app = create_app(load_settings(reclaim_idle_after="90d"))
    assert RECLAIM_IDLE in {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert app.amqp.router.route({}, RECLAIM_IDLE)["queue"].name == ADMIN_QUEUE
