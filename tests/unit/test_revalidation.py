from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from domain.events import EventKind
from domain.licenses import LicenseStatus, ServiceAnswer, retry_delay
from domain.ports import Rejected, Unverifiable, ValidationResult, Verified
from domain.refusals import Refused
from domain.services.agreement import accept_agreement
from domain.services.licenses import add_license, remove_license
from domain.services.revalidation import (
    CheckOutcome,
    RevalidationRules,
    refresh_all_licenses,
    refresh_license,
    revalidate_due_licenses,
)
from tests.fakes import FakeLicenseService, FakeStore

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
GRACE = timedelta(days=14)
EVERY = timedelta(days=3)
RULES = RevalidationRules(revalidate_every=EVERY, lease=timedelta(minutes=5), grace_period=GRACE)
KEY, OTHER = "AVTR-7Q2M-K9XD-4HFT-PL3C", "AVTR-0000-0000-0000-0010"


def verified(key: str = KEY, seats: int = 25, status: str = "active", issued_at: datetime = NOW) -> Verified:
    return Verified(ServiceAnswer(key, status, seats, NOW + timedelta(days=200), issued_at, "Example Corp"))


def licensed(*keys: str) -> tuple[FakeStore, FakeLicenseService]:
    store, service = FakeStore(), FakeLicenseService({key: verified(key) for key in keys})
    accept_agreement("admin", store, NOW, GRACE)
    for key in keys:
        add_license(key, "admin", store, service, NOW, GRACE, EVERY)
    service.calls.clear()
    return store, service


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def test_a_refresh_picks_up_purchased_seats() -> None:
    store, service = licensed(KEY)
    later = NOW + timedelta(hours=1)
    service.results[KEY] = verified(seats=40, issued_at=later)
    checked = refresh_license(KEY.lower(), "ada", store, service, later, RULES)
    assert (checked.outcome, checked.view and checked.view.seats_granted) == (CheckOutcome.VERIFIED, 40)
    assert checked.message == "The license …PL3C is verified: 40 seats until 2027-06-17T12:00:00Z."
    assert checked.view is not None and checked.view.next_check_at == later + EVERY
    event = store.ledger.events[-1]
    assert (event.kind, event.actor, event.seats_total_before, event.seats_total_after) == (
        EventKind.LICENSE_REFRESHED,
        "ada",
        25,
        40,
    )


def test_refreshing_a_license_that_was_never_added_is_refused() -> None:
    store, service = licensed(KEY)
    with pytest.raises(Refused, match="No license with the key …0010 has been added"):
        refresh_license(OTHER, "ada", store, service, NOW, RULES)
    assert service.calls == []


def test_a_failed_check_keeps_the_last_verified_seats_within_the_grace_period_and_shows_the_error() -> None:
    store, service = licensed(KEY)
    later = NOW + timedelta(days=3)
    service.results[KEY] = Unverifiable("the license service did not answer within 10 s")
    checked = refresh_license(KEY, "ada", store, service, later, RULES)
    view = checked.view
    assert view is not None
    assert (checked.outcome, view.status, view.seats_granted, view.failed_checks) == (
        CheckOutcome.COULD_NOT_VERIFY,
        LicenseStatus.ACTIVE,
        25,
        1,
    )
    assert (
        view.last_error
        == "The license could not be verified: the license service did not answer within 10 s."
    )
    assert view.grace_ends_at == NOW + GRACE
    assert view.next_check_at == later + timedelta(minutes=1)
    assert "It keeps its 25 seats until 2026-12-13T12:00:00Z" in checked.message


def test_seats_are_gone_once_failures_outlast_the_grace_period() -> None:
    store, service = licensed(KEY)
    service.results[KEY] = Unverifiable("connection refused")
    checked = refresh_license(KEY, "ada", store, service, NOW + GRACE + timedelta(seconds=1), RULES)
    assert checked.view is not None
    assert (checked.view.status, checked.view.seats_granted) == (LicenseStatus.UNVERIFIED, 0)
    assert "grants no seats until the license service confirms it" in checked.message


def test_failed_checks_are_retried_soon_then_less_often_but_at_least_once_per_interval() -> None:
    delays = [retry_delay(failures, EVERY) for failures in range(1, 10)]
    assert delays[:4] == [timedelta(minutes=minutes) for minutes in (1, 2, 4, 8)]
    assert delays[-1] == timedelta(hours=1)
    assert retry_delay(5, timedelta(seconds=3)) == timedelta(seconds=3)


def test_retry_after_postpones_the_next_check() -> None:
    store, service = licensed(KEY)
    service.results[KEY] = Unverifiable("the license service answered 503", retry_after=timedelta(minutes=30))
    checked = refresh_license(KEY, "ada", store, service, NOW, RULES)
    assert checked.view is not None and checked.view.next_check_at == NOW + timedelta(minutes=30)


def test_a_malformed_request_on_refresh_takes_no_seats_away() -> None:
    store, service = licensed(KEY)
    service.results[KEY] = Rejected("license_key is malformed", malformed_request=True)
    checked = refresh_license(KEY, "ada", store, service, NOW, RULES)
    assert checked.outcome is CheckOutcome.COULD_NOT_VERIFY
    assert checked.view is not None and checked.view.seats_granted == 25
    assert "refused the request as malformed" in (checked.view.last_error or "")


def test_a_key_the_service_no_longer_knows_grants_nothing_but_stays_listed() -> None:
    store, service = licensed(KEY)
    service.results[KEY] = Rejected("No license with this key exists.")
    checked = refresh_license(KEY, "ada", store, service, NOW, RULES)
    assert checked.outcome is CheckOutcome.REJECTED
    assert checked.view is not None and checked.view.seats_granted == 0
    assert "No license with this key exists" in checked.message
    assert KEY in store.ledger.licenses


@pytest.mark.parametrize("status", ["revoked", "suspended", "expired"])
def test_a_license_the_service_reports_inactive_grants_nothing(status: str) -> None:
    store, service = licensed(KEY)
    service.results[KEY] = verified(status=status)
    checked = refresh_license(KEY, "ada", store, service, NOW, RULES)
    assert checked.view is not None
    assert (checked.view.status.value, checked.view.seats_granted) == (status, 0)
    assert checked.message == f"The license …PL3C is verified, but it is {status}: it grants no seats."


def test_only_due_licenses_are_revalidated() -> None:
    store, service = licensed(KEY)
    add_license(
        OTHER,
        "admin",
        store,
        FakeLicenseService({OTHER: verified(OTHER)}),
        NOW + timedelta(days=1),
        GRACE,
        EVERY,
    )
    service.results[OTHER] = verified(OTHER)
    assert revalidate_due_licenses(store, service, at(NOW + EVERY - timedelta(seconds=1)), RULES) == []
    checked = revalidate_due_licenses(store, service, at(NOW + EVERY), RULES)
    assert [check.key for check in checked] == [KEY]
    assert [call[0] for call in service.calls] == [KEY]


def test_looking_for_due_licenses_takes_no_lock_when_none_is_due() -> None:
    store, service = licensed(KEY)
    writes = store.writes
    assert revalidate_due_licenses(store, service, at(NOW + timedelta(days=1)), RULES) == []
    assert store.writes == writes


def test_a_license_that_missed_many_checks_is_checked_once_and_then_on_schedule() -> None:
    store, service = licensed(KEY)
    much_later = NOW + 10 * EVERY
    checked = revalidate_due_licenses(store, service, at(much_later), RULES)
    assert len(checked) == 1
    assert checked[0].view is not None and checked[0].view.next_check_at == much_later + EVERY
    assert revalidate_due_licenses(store, service, at(much_later + timedelta(hours=1)), RULES) == []


def test_a_check_that_died_leaves_the_license_due_again_after_its_lease() -> None:
    store, service = licensed(KEY)
    due = NOW + EVERY

    def crash(key: str, installation_id: str, seats_in_use: int) -> ValidationResult:
        raise RuntimeError("the worker died")

    service.validate = crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        revalidate_due_licenses(store, service, at(due), RULES)
    healthy = FakeLicenseService({KEY: verified()})
    assert revalidate_due_licenses(store, healthy, at(due + RULES.lease - timedelta(seconds=1)), RULES) == []
    assert len(revalidate_due_licenses(store, healthy, at(due + RULES.lease), RULES)) == 1


def test_a_check_overtaken_by_one_that_finished_first_leaves_its_result_alone() -> None:
    store, _ = licensed(KEY)
    later = NOW + timedelta(hours=1)

    class SlowService(FakeLicenseService):
        def validate(self, key: str, installation_id: str, seats_in_use: int) -> ValidationResult:
            # While this check waits, an administrator's refresh gets an answer and writes it.
            refresh_license(
                KEY,
                "ada",
                store,
                FakeLicenseService({KEY: verified(seats=30, issued_at=later)}),
                later,
                RULES,
            )
            return Unverifiable("timed out")

    checked = refresh_license(KEY, "schedule", store, SlowService(), NOW + timedelta(minutes=59), RULES)
    assert checked.message == "Another check of this license finished first; its result stands."
    license = store.ledger.licenses[KEY]
    assert (license.seats, license.last_error, license.failed_checks) == (30, None, 0)
    assert license.next_check_at == later + EVERY


def test_refresh_all_checks_every_license_whether_due_or_not() -> None:
    store, service = licensed(KEY, OTHER)
    checked = refresh_all_licenses("ada", store, service, at(NOW + timedelta(minutes=1)), RULES)
    assert sorted(check.key for check in checked) == sorted([KEY, OTHER])
    assert len(service.calls) == 2


def test_a_license_removed_while_it_was_checked_stays_removed() -> None:
    store, _ = licensed(KEY)

    class RemovingService(FakeLicenseService):
        def validate(self, key: str, installation_id: str, seats_in_use: int) -> ValidationResult:
            remove_license(KEY, "ada", store, NOW, GRACE)
            return verified()

    checked = refresh_license(KEY, "ada", store, RemovingService(), NOW, RULES)
    assert checked.view is None
    assert store.ledger.licenses == {}


def test_an_answer_older_than_the_last_one_taken_is_refused_and_counts_as_not_verified() -> None:
    store, service = licensed(KEY)
    service.results[KEY] = verified(seats=99, issued_at=NOW - timedelta(days=1))
    checked = refresh_license(KEY, "ada", store, service, NOW + timedelta(hours=1), RULES)
    assert checked.outcome is CheckOutcome.COULD_NOT_VERIFY
    assert checked.view is not None
    assert (checked.view.seats_granted, checked.view.failed_checks) == (25, 1)
    assert "before the answer already accepted for this key" in checked.message


class SlowService(FakeLicenseService):
    """A license service that takes a minute per answer, on the test's clock."""

    def __init__(self, service: FakeLicenseService, clock: list[datetime]) -> None:
        super().__init__(service.results)
        self.clock = clock

    def validate(self, key: str, installation_id: str, seats_in_use: int) -> ValidationResult:
        self.clock[0] += timedelta(minutes=1)
        return super().validate(key, installation_id, seats_in_use)


FIVE_KEYS = [f"AVTR-0000-0000-0000-{number:04d}" for number in range(1, 6)]


def test_a_run_against_a_slow_service_begins_no_check_after_its_budget() -> None:
    store, fast = licensed(*FIVE_KEYS)
    clock = [NOW + EVERY]
    slow = SlowService(fast, clock)
    until = clock[0] + timedelta(minutes=2, seconds=30)

    first = revalidate_due_licenses(store, slow, lambda: clock[0], RULES, until)
    # Checks begin at +0, +1 and +2 minutes; at +3 the budget is spent.
    assert len(first) == 3 and clock[0] == NOW + EVERY + timedelta(minutes=3)
    # The two left are still due: the next run checks them.
    second = revalidate_due_licenses(store, slow, lambda: clock[0], RULES, clock[0] + timedelta(minutes=10))
    assert sorted(check.key for check in first + second) == FIVE_KEYS


def test_a_run_checks_at_least_one_license_however_slow_the_service() -> None:
    store, fast = licensed(*FIVE_KEYS)
    clock = [NOW]
    checked = refresh_all_licenses("ada", store, SlowService(fast, clock), lambda: clock[0], RULES, until=NOW)
    assert len(checked) == 1


def test_a_signed_rejection_older_than_the_last_answer_taken_is_refused_and_takes_nothing() -> None:
    store, service = licensed(KEY)
    service.results[KEY] = Rejected("No license with this key exists.", issued_at=NOW - timedelta(days=1))
    checked = refresh_license(KEY, "ada", store, service, NOW + timedelta(hours=1), RULES)
    assert checked.outcome is CheckOutcome.COULD_NOT_VERIFY
    assert checked.view is not None
    assert (checked.view.seats_granted, checked.view.failed_checks) == (25, 1)
    assert "before the answer already accepted for this key" in checked.message


def test_an_answer_that_failed_a_check_is_recorded_with_the_check_for_the_administrator() -> None:
    store, service = licensed(KEY)
    reason = (
        "the license service's answer was not trusted: the answer's nonce is not the one this request sent"
    )
    service.results[KEY] = Unverifiable(reason)
    checked = refresh_license(KEY, "ada", store, service, NOW + timedelta(hours=1), RULES)
    assert checked.view is not None
    assert checked.view.last_error == f"The license could not be verified: {reason}."
    assert checked.view.verified_at == NOW
