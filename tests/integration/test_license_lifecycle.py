"""The license lifecycle against the development license server over HTTP, on SQLite and PostgreSQL.

One test for each row of the contract's table, each fault switch, a license that
expires between two checks, a clock that goes backwards, and grace running out.
Instants on the manager's side are passed in, so days can pass in a test; the
server's own clock is real.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.license_service import HttpLicenseService
from adapters.sql import SqlStore
from domain.licenses import LicenseStatus
from domain.moments import utc_now
from domain.refusals import Refused
from domain.services.agreement import accept_agreement
from domain.services.licenses import LicenseView, add_license, remove_license
from domain.services.revalidation import (
    CheckOutcome,
    RevalidationRules,
    refresh_all_licenses,
    refresh_license,
    revalidate_due_licenses,
)
from domain.services.status import describe_ledger
from domain.services.users import add_user
from tests.support.license_server import LicenseServerProcess, key_entry, license_server
from tests.support.servers import free_port

GRACE = timedelta(days=14)
EVERY = timedelta(days=3)
RULES = RevalidationRules(revalidate_every=EVERY, lease=timedelta(minutes=1), grace_period=GRACE)
FIVE, TEN = "AVTR-LIFE-ACTV-0005", "AVTR-LIFE-ACTV-0010"
KEYS = [
    key_entry(FIVE, 5, expires_in_days=365),
    key_entry(TEN, 10, expires_in_days=365),
    key_entry("AVTR-LIFE-EXPD-0007", 7, "expired", expires_in_days=-1),
    key_entry("AVTR-LIFE-SUSP-0008", 8, "suspended"),
    key_entry("AVTR-LIFE-RVKD-0009", 9, "revoked"),
]


@pytest.fixture(scope="module")
def server() -> Iterator[LicenseServerProcess]:
    with license_server(KEYS) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_server(server: LicenseServerProcess) -> None:
    """Every key as the keys file has it, no faults, an empty log."""
    server.heal()
    for entry in KEYS:
        server.put_key(entry["key"], **{name: value for name, value in entry.items() if name != "key"})
    server.forget_validations()


@pytest.fixture
def service(server: LicenseServerProcess) -> HttpLicenseService:
    return client(server.url, server.public_key)


def client(url: str, public_key: str) -> HttpLicenseService:
    return HttpLicenseService(
        url,
        public_key,
        connect_timeout=1.0,
        read_timeout=0.5,
        attempts=2,
        first_pause=0.05,
        longest_pause=0.5,
    )


@pytest.fixture
def accepted(store: SqlStore) -> SqlStore:
    accept_agreement("Ada Admin", store, utc_now(), GRACE)
    return store


def add(store: SqlStore, service: HttpLicenseService, key: str, now: datetime | None = None) -> LicenseView:
    return add_license(key, "ada", store, service, now or utc_now(), GRACE, EVERY)


def stored_keys(store: SqlStore) -> list[str]:
    with store.reading() as uow:
        return [license.key for license in uow.licenses.list()]


def view_of(store: SqlStore, key: str, now: datetime) -> LicenseView:
    [view] = [view for view in describe_ledger(store, now, GRACE).licenses if view.key == key]
    return view


# --- row 1: 200, signature valid, active, not past expires_at: seats until expires_at ------------


def test_an_active_key_is_added_with_its_seats_until_its_expiry(
    accepted: SqlStore, service: HttpLicenseService
) -> None:
    now = utc_now()
    view = add(accepted, service, FIVE.lower(), now)
    assert (view.key, view.status, view.seats_granted) == (FIVE, LicenseStatus.ACTIVE, 5)
    assert view.expires_at is not None and view.expires_at > now + timedelta(days=364)
    assert describe_ledger(accepted, now, GRACE).counts.licensed == 5
    assert describe_ledger(accepted, view.expires_at, GRACE).counts.licensed == 0


def test_a_refresh_picks_up_seats_purchased_meanwhile(
    accepted: SqlStore, service: HttpLicenseService, server: LicenseServerProcess
) -> None:
    add(accepted, service, FIVE)
    server.put_key(FIVE, seats=12)
    checked = refresh_license(FIVE, "ada", accepted, service, utc_now(), RULES)
    assert checked.outcome is CheckOutcome.VERIFIED
    assert describe_ledger(accepted, utc_now(), GRACE).counts.licensed == 12


# --- row 2: 200, signature valid, expired / suspended / revoked: nothing, still listed ----------


@pytest.mark.parametrize(
    ("key", "status"),
    [
        ("AVTR-LIFE-EXPD-0007", "expired"),
        ("AVTR-LIFE-SUSP-0008", "suspended"),
        ("AVTR-LIFE-RVKD-0009", "revoked"),
    ],
)
def test_a_key_that_is_not_active_is_refused_and_nothing_is_stored(
    accepted: SqlStore, service: HttpLicenseService, key: str, status: str
) -> None:
    with pytest.raises(Refused, match=f"reports this key as {status}"):
        add(accepted, service, key)
    assert stored_keys(accepted) == []


@pytest.mark.parametrize("status", ["suspended", "revoked", "expired"])
def test_a_license_that_stops_being_active_grants_nothing_but_stays_listed(
    accepted: SqlStore, service: HttpLicenseService, server: LicenseServerProcess, status: str
) -> None:
    add(accepted, service, TEN)
    server.put_key(TEN, status=status)
    checked = refresh_license(TEN, "ada", accepted, service, utc_now(), RULES)
    assert checked.view is not None
    assert (checked.view.status.value, checked.view.seats_granted) == (status, 0)
    assert stored_keys(accepted) == [TEN]


def test_a_suspended_license_grants_its_seats_again_once_active(
    accepted: SqlStore, service: HttpLicenseService, server: LicenseServerProcess
) -> None:
    add(accepted, service, TEN)
    server.put_key(TEN, status="suspended")
    refresh_license(TEN, "ada", accepted, service, utc_now(), RULES)
    server.put_key(TEN, status="active")
    refresh_license(TEN, "ada", accepted, service, utc_now(), RULES)
    assert describe_ledger(accepted, utc_now(), GRACE).counts.licensed == 10


# --- row 3: 404: nothing; adding is refused with the service's message ----------------------------


def test_an_unknown_key_is_refused_with_the_services_message(
    accepted: SqlStore, service: HttpLicenseService
) -> None:
    with pytest.raises(Refused, match="No license with this key exists"):
        add(accepted, service, "AVTR-LIFE-NONE-0000")
    assert stored_keys(accepted) == []


def test_a_key_the_service_forgot_grants_nothing_after_its_next_check(
    accepted: SqlStore, service: HttpLicenseService, server: LicenseServerProcess
) -> None:
    add(accepted, service, FIVE)
    server.remove_key(FIVE)
    checked = refresh_license(FIVE, "ada", accepted, service, utc_now(), RULES)
    assert checked.outcome is CheckOutcome.REJECTED
    assert checked.view is not None and checked.view.seats_granted == 0
    assert "No license with this key exists" in (checked.view.last_error or "")


def test_a_malformed_key_is_refused_with_the_services_message(
    accepted: SqlStore, service: HttpLicenseService
) -> None:
    with pytest.raises(Refused, match="license_key is malformed"):
        add(accepted, service, "AVTR_LIFE!")
    assert stored_keys(accepted) == []


def test_a_key_already_added_is_refused_and_nothing_changes(
    accepted: SqlStore, service: HttpLicenseService, server: LicenseServerProcess
) -> None:
    add(accepted, service, FIVE)
    with pytest.raises(Refused, match="already been added"):
        add(accepted, service, f"  {FIVE.lower()} ")
    assert stored_keys(accepted) == [FIVE]
    assert len(server.validations(FIVE)) == 1


# --- row 4: transient failure or bad signature: the last verified grant, until grace runs out ------

FAULTS: list[dict[str, Any]] = [
    {"fail_with": 500},
    {"fail_with": 503, "retry_after": 1},
    {"fail_with": 429},
    {"delay_seconds": 2},
    {"garbage": True},
    {"signature": "wrong"},
    {"signature": "missing"},
]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda fault: "-".join(f"{k}={v}" for k, v in fault.items()))
def test_a_failing_check_keeps_the_last_verified_seats_and_shows_the_error(
    accepted: SqlStore, service: HttpLicenseService, server: LicenseServerProcess, fault: dict[str, Any]
) -> None:
    added = utc_now()
    add(accepted, service, FIVE, added)
    server.fail(**fault)
    later = added + timedelta(days=3)
    checked = revalidate_due_licenses(accepted, service, lambda: later, RULES)
    assert [check.outcome for check in checked] == [CheckOutcome.COULD_NOT_VERIFY]
    view = view_of(accepted, FIVE, later)
    assert (view.status, view.seats_granted, view.failed_checks) == (LicenseStatus.ACTIVE, 5, 1)
    assert view.last_error is not None and view.last_error.startswith("The license could not be verified")
    assert view.next_check_at is not None and later < view.next_check_at <= later + timedelta(hours=1)


@pytest.mark.parametrize(
    "fault", FAULTS[:1] + FAULTS[-2:], ids=["500", "wrong-signature", "missing-signature"]
)
def test_a_key_that_cannot_be_verified_is_not_added_and_the_message_says_try_again(
    accepted: SqlStore, service: HttpLicenseService, server: LicenseServerProcess, fault: dict[str, Any]
) -> None:
    server.fail(**fault)
    with pytest.raises(Refused, match="try again"):
        add(accepted, service, FIVE)
    assert stored_keys(accepted) == []


def test_a_key_is_not_added_while_the_service_cannot_be_reached(
    accepted: SqlStore, server: LicenseServerProcess
) -> None:
    nobody = client(f"http://127.0.0.1:{free_port()}", server.public_key)
    refusal = r"could not be validated: .*cannot be reached .*Connection refused.* try again"
    with pytest.raises(Refused, match=refusal):
        add(accepted, nobody, FIVE)
    assert stored_keys(accepted) == []


def test_grace_runs_out_after_failed_checks_and_comes_back_with_the_service(
    accepted: SqlStore, service: HttpLicenseService, server: LicenseServerProcess
) -> None:
    # The manager's clock starts a grace period in the past, so that it runs out by now and the
    # service's answer, issued now by the real clock, is fresh when it comes back.
    added = utc_now() - GRACE - timedelta(minutes=2)
    add(accepted, service, TEN, added)
    with accepted.writing() as uow:
        [license] = uow.licenses.list()
        license.verified_at = license.latest_issued_at = added
        uow.licenses.save(license)
        uow.commit()
    server.fail(fail_with=503)
    within = added + GRACE - timedelta(minutes=1)
    revalidate_due_licenses(accepted, service, lambda: within, RULES)
    assert view_of(accepted, TEN, within).seats_granted == 10
    past = added + GRACE + timedelta(minutes=1)
    [checked] = revalidate_due_licenses(accepted, service, lambda: past, RULES)
    assert checked.view is not None
    assert (checked.view.status, checked.view.seats_granted, checked.view.failed_checks) == (
        LicenseStatus.UNVERIFIED,
        0,
        2,
    )
    assert "grants no seats until the license service confirms it" in checked.message
    server.heal()
    back = utc_now()
    refresh_license(TEN, "ada", accepted, service, back, RULES)
    view = view_of(accepted, TEN, back)
    assert (view.status, view.seats_granted, view.last_error, view.failed_checks) == (
        LicenseStatus.ACTIVE,
        10,
        None,
        0,
    )


def test_a_bad_signature_after_grace_grants_nothing(
    accepted: SqlStore, service: HttpLicenseService, server: LicenseServerProcess
) -> None:
    added = utc_now()
    add(accepted, service, TEN, added)
    server.put_key(TEN, seats=500)
    server.fail(signature="wrong")
    past = added + GRACE + timedelta(seconds=1)
    [checked] = revalidate_due_licenses(accepted, service, lambda: past, RULES)
    assert checked.view is not None
    assert (checked.view.status, checked.view.seats_granted, checked.view.seats) == (
        LicenseStatus.UNVERIFIED,
        0,
        10,
    )


# --- time ----------------------------------------------------------------------------------------


def test_a_license_that_expires_between_two_checks_grants_nothing_after_its_expiry(
    accepted: SqlStore, service: HttpLicenseService, server: LicenseServerProcess
) -> None:
    added = utc_now()
    expiry = added + timedelta(days=2)
    server.put_key(FIVE, expires_at=expiry.isoformat())
    add(accepted, service, FIVE, added)
    assert view_of(accepted, FIVE, expiry - timedelta(seconds=1)).seats_granted == 5
    assert view_of(accepted, FIVE, expiry).status is LicenseStatus.EXPIRED
    # The service still says "active" (its clock is behind ours): the client's clock decides.
    second_check = added + EVERY
    [checked] = revalidate_due_licenses(accepted, service, lambda: second_check, RULES)
    assert checked.view is not None
    assert (checked.view.status, checked.view.seats_granted) == (LicenseStatus.EXPIRED, 0)


def test_a_clock_that_goes_backwards_does_not_bring_an_expired_license_back(
    accepted: SqlStore, service: HttpLicenseService, server: LicenseServerProcess
) -> None:
    real = utc_now()
    expiry = real + timedelta(days=10)
    server.put_key(FIVE, expires_at=expiry.isoformat())
    add(accepted, service, FIVE, real)
    refresh_license(FIVE, "ada", accepted, service, expiry + timedelta(days=1), RULES)
    # The machine's clock is set back to before the expiry, and the license is checked again.
    refresh_license(FIVE, "ada", accepted, service, real, RULES)
    assert view_of(accepted, FIVE, real).status is LicenseStatus.EXPIRED
    assert describe_ledger(accepted, real, GRACE).counts.licensed == 0


def test_a_clock_set_back_before_the_services_answer_does_not_make_an_expired_key_valid(
    accepted: SqlStore, service: HttpLicenseService, server: LicenseServerProcess
) -> None:
    real = utc_now()
    # The service still calls the key active, but by its own clock the key expired a minute ago.
    server.put_key(FIVE, expires_at=(real - timedelta(minutes=1)).isoformat())
    set_back = real - timedelta(days=1)
    with pytest.raises(Refused, match="reports this key as expired"):
        add(accepted, service, FIVE, set_back)
    assert stored_keys(accepted) == []


# --- remove, status, concurrency ---------------------------------------------------------------


def test_removing_a_license_drops_its_seats_at_once_and_shows_how_far_over_the_limit(
    accepted: SqlStore, service: HttpLicenseService
) -> None:
    now = utc_now()
    add(accepted, service, FIVE, now)
    add(accepted, service, TEN, now)
    for number in range(8):
        add_user(f"editor{number}", "ada", accepted, now, GRACE)
    remove_license(TEN, "ada", accepted, now, GRACE)
    counts = describe_ledger(accepted, now, GRACE).counts
    assert (counts.licensed, counts.in_use, counts.free, counts.over_limit_by) == (5, 8, 0, 3)


def test_two_schedulers_at_once_check_each_due_license_once(
    accepted: SqlStore, service: HttpLicenseService, server: LicenseServerProcess
) -> None:
    added = utc_now()
    add(accepted, service, FIVE, added)
    add(accepted, service, TEN, added)
    server.forget_validations()
    server.fail(delay_seconds=0.3)
    due = added + EVERY
    results: list[list[Any]] = []
    start = threading.Barrier(2)

    def scheduler() -> None:
        start.wait()
        results.append(
            revalidate_due_licenses(accepted, client(server.url, server.public_key), lambda: due, RULES)
        )

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(len(checked) for checked in results) in ([0, 2], [1, 1])
    assert sorted(entry["license_key"] for entry in server.validations()) == ["…0005", "…0010"]


def test_refresh_all_checks_every_license_and_reports_each(
    accepted: SqlStore, service: HttpLicenseService, server: LicenseServerProcess
) -> None:
    add(accepted, service, FIVE)
    add(accepted, service, TEN)
    server.remove_key(TEN)
    checked = refresh_all_licenses("ada", accepted, service, utc_now, RULES)
    assert {check.key: check.outcome for check in checked} == {
        FIVE: CheckOutcome.VERIFIED,
        TEN: CheckOutcome.REJECTED,
    }


def test_status_shows_each_license_with_its_checks(accepted: SqlStore, service: HttpLicenseService) -> None:
    now = datetime.now(UTC)
    add(accepted, service, FIVE, now)
    view = view_of(accepted, FIVE, now)
    # Verified when the service issued its answer: grace runs from then.
    assert view.verified_at is not None and now <= view.verified_at <= utc_now()
    assert view.last_checked_at == now
    assert view.next_check_at == now + EVERY
    assert view.grace_ends_at == view.verified_at + GRACE
    assert (view.last_error, view.failed_checks) == (None, 0)
