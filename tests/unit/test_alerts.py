"""The alert conditions and what is said of them, on the in-memory store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.alerts import AlertKind, EnrolmentBacklog, NoticeKind
from domain.events import AuditEvent, EventKind
from domain.licenses import License
from domain.seats import Assignment, Seat
from domain.services.alerts import evaluate_alerts, open_alerts
from tests.fakes import FakeStore

NOW = datetime(2027, 3, 1, 12, tzinfo=UTC)
GRACE = timedelta(days=14)
DAY = timedelta(days=1)


def a_license(key: str = "AVTOR-KEY-0001", seats: int = 10, expires_in: timedelta = 200 * DAY) -> License:
    return License(
        key=key,
        added_at=NOW - 30 * DAY,
        seats=seats,
        service_status="active",
        expires_at=NOW + expires_in,
        verified_at=NOW - DAY,
        latest_issued_at=NOW - DAY,
        last_checked_at=NOW - DAY,
        id=f"id-{key}",
    )


def store_with(*licenses: License, users: int = 0) -> FakeStore:
    store = FakeStore()
    for license in licenses:
        store.ledger.licenses[license.key] = license
    for number in range(users):
        name = f"user{number:03}"
        store.ledger.seats[name] = Seat(name, name, Assignment.MANUAL, NOW - DAY, "admin")
    return store


def raised(notices: list, kind: NoticeKind = NoticeKind.RAISED) -> list[tuple[AlertKind, int]]:  # type: ignore[type-arg]
    return [(n.alert.kind, n.alert.threshold) for n in notices if n.kind is kind]


def test_a_license_that_expires_in_seven_days_raises_one_seven_day_alert() -> None:
    store = store_with(a_license(expires_in=6 * DAY + timedelta(hours=20)))
    notices = evaluate_alerts(store, NOW, GRACE)
    assert raised(notices) == [(AlertKind.LICENSE_EXPIRES, 7)]
    assert "expires in" in notices[0].alert.summary and "…0001" in notices[0].alert.summary


def test_a_second_evaluation_does_not_repeat_an_alert() -> None:
    store = store_with(a_license(expires_in=6 * DAY))
    evaluate_alerts(store, NOW, GRACE)
    assert evaluate_alerts(store, NOW + timedelta(minutes=5), GRACE) == []
    assert [a.alert.threshold for a in open_alerts(store)] == [7]


def test_each_expiry_threshold_is_raised_once_as_days_go_by() -> None:
    store = store_with(a_license(expires_in=40 * DAY))
    seen = []
    for day in range(41):
        # Verified every day, as a reachable license service does.
        store.ledger.licenses["AVTOR-KEY-0001"].verified_at = NOW + day * DAY
        seen += raised(evaluate_alerts(store, NOW + day * DAY, GRACE))
    assert seen == [
        (AlertKind.LICENSE_EXPIRES, 30),
        (AlertKind.LICENSE_EXPIRES, 7),
        (AlertKind.LICENSE_EXPIRES, 1),
    ]


def test_a_renewed_license_resolves_its_expiry_alert() -> None:
    store = store_with(a_license(expires_in=6 * DAY))
    evaluate_alerts(store, NOW, GRACE)
    store.ledger.licenses["AVTOR-KEY-0001"].expires_at = NOW + 365 * DAY
    notices = evaluate_alerts(store, NOW + timedelta(minutes=1), GRACE)
    assert raised(notices, NoticeKind.RESOLVED) == [(AlertKind.LICENSE_EXPIRES, 7)]
    assert raised(notices) == [] and open_alerts(store) == []


def test_a_license_not_verified_warns_when_its_grace_has_seven_three_and_one_days_left() -> None:
    license = a_license()
    license.failed_checks = 3
    license.last_error = "The license service did not answer."
    store = store_with(license)
    seen = []
    for day in range(15):
        seen += raised(evaluate_alerts(store, NOW + day * DAY, GRACE))
    assert seen == [
        (AlertKind.GRACE_RUNS_OUT, 7),
        (AlertKind.GRACE_RUNS_OUT, 3),
        (AlertKind.GRACE_RUNS_OUT, 1),
    ]


def test_seats_ninety_percent_then_all_allocated_then_over_the_limit() -> None:
    store = store_with(a_license(seats=10), users=9)
    assert raised(evaluate_alerts(store, NOW, GRACE)) == [(AlertKind.SEATS_RUNNING_OUT, 90)]
    store.ledger.seats["user999"] = Seat("user999", "user999", Assignment.MANUAL, NOW, "admin")
    assert raised(evaluate_alerts(store, NOW, GRACE)) == [(AlertKind.SEATS_RUNNING_OUT, 100)]
    store.ledger.seats["user998"] = Seat("user998", "user998", Assignment.MANUAL, NOW, "admin")
    notices = evaluate_alerts(store, NOW, GRACE)
    assert raised(notices) == [(AlertKind.OVER_LIMIT, 1)]
    assert raised(notices, NoticeKind.RESOLVED) == [(AlertKind.SEATS_RUNNING_OUT, 100)]


def test_a_removed_license_that_put_users_over_the_limit_is_named() -> None:
    store = store_with(a_license(seats=5), users=5)
    evaluate_alerts(store, NOW, GRACE)
    store.ledger.licenses.clear()
    store.ledger.events.append(AuditEvent(EventKind.LICENSE_REMOVED, NOW, "admin", "…0001", 5, 0, 5, 5))
    notices = evaluate_alerts(store, NOW + timedelta(minutes=1), GRACE)
    kinds = raised(notices)
    assert (AlertKind.OVER_LIMIT, 5) in kinds and (AlertKind.LICENSE_LOSS_OVER_LIMIT, 1) in kinds
    loss = next(n for n in notices if n.alert.kind is AlertKind.LICENSE_LOSS_OVER_LIMIT)
    assert "…0001 was removed" in loss.alert.summary


def test_an_expired_license_that_put_users_over_the_limit_is_named() -> None:
    store = store_with(a_license(key="AVTOR-KEY-0002", seats=5, expires_in=-DAY), users=3)
    notices = evaluate_alerts(store, NOW, GRACE)
    loss = next(n for n in notices if n.alert.kind is AlertKind.LICENSE_LOSS_OVER_LIMIT)
    assert "…0002 expired" in loss.alert.summary


def refusal(name: str, at: datetime) -> AuditEvent:
    return AuditEvent(EventKind.SEAT_REFUSED, at, "editor-start", name, 1, 1, 1, 1, outcome="no_seats")


def test_refusals_are_summarized_at_most_once_an_hour_with_who_was_refused() -> None:
    store = store_with(a_license(seats=1), users=1)
    evaluate_alerts(store, NOW, GRACE)
    store.ledger.events += [refusal("anna", NOW), refusal("bob", NOW), refusal("anna", NOW)]
    notices = evaluate_alerts(store, NOW + timedelta(minutes=1), GRACE)
    summary = next(n for n in notices if n.alert.kind is AlertKind.EDITORS_REFUSED)
    assert "2 editors" in summary.alert.summary and "anna, bob" in summary.alert.summary
    store.ledger.events.append(refusal("carl", NOW + timedelta(minutes=30)))
    assert raised(evaluate_alerts(store, NOW + timedelta(minutes=31), GRACE)) == []
    store.ledger.events.append(refusal("dora", NOW + timedelta(minutes=70)))
    again = raised(evaluate_alerts(store, NOW + timedelta(minutes=71), GRACE))
    assert again == [(AlertKind.EDITORS_REFUSED, 2)]
    later = evaluate_alerts(store, NOW + timedelta(hours=3), GRACE)
    assert raised(later, NoticeKind.RESOLVED) == [(AlertKind.EDITORS_REFUSED, 2)]


def test_a_malformed_start_is_no_refusal_for_want_of_a_seat() -> None:
    store = store_with(a_license(seats=10), users=1)
    store.ledger.events.append(
        AuditEvent(EventKind.SEAT_REFUSED, NOW, "editor-start", "x", 10, 10, 1, 1, outcome="invalid_request")
    )
    assert evaluate_alerts(store, NOW, GRACE) == []


def test_entries_waiting_with_no_consumer_raise_an_alert_resolved_when_one_reads() -> None:
    store = store_with(a_license())
    stalled = EnrolmentBacklog(waiting=12, consumers_alive=0, oldest_age=timedelta(minutes=5))
    notices = evaluate_alerts(store, NOW, GRACE, stalled)
    assert raised(notices) == [(AlertKind.ENROLMENT_STALLED, 1)]
    assert "12 editors' starts wait" in notices[0].alert.summary
    assert evaluate_alerts(store, NOW, GRACE, stalled) == []
    reading = EnrolmentBacklog(waiting=12, consumers_alive=1)
    assert raised(evaluate_alerts(store, NOW, GRACE, reading), NoticeKind.RESOLVED) == [
        (AlertKind.ENROLMENT_STALLED, 1)
    ]


def test_a_quiet_installation_raises_nothing() -> None:
    assert evaluate_alerts(store_with(a_license(seats=10), users=3), NOW, GRACE) == []
