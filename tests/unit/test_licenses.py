from datetime import UTC, datetime, timedelta

import pytest

from domain.licenses import (
    InvalidLicenseKey,
    License,
    LicenseStatus,
    ServiceAnswer,
    canonical_license_key,
    masked_key,
    seats_licensed,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
GRACE = timedelta(days=14)
KEY = "AVTR-7Q2M-K9XD-4HFT-PL3C"


def answer(
    status: str = "active",
    seats: int = 25,
    expires_at: datetime | None = NOW + timedelta(days=200),
    issued_at: datetime = NOW,
) -> ServiceAnswer:
    return ServiceAnswer(KEY, status, seats, expires_at, issued_at, "Example Corp")


def verified(**fields: object) -> License:
    license = License(key=KEY, added_at=NOW)
    assert license.record_answer(answer(**fields), NOW)  # type: ignore[arg-type]
    return license


def test_keys_are_trimmed_and_upper_case() -> None:
    assert canonical_license_key("  avtr-7q2m-k9xd-4hft-pl3c\n") == KEY


@pytest.mark.parametrize("raw", [None, "", "   ", "AVTR 7Q2M", "A" * 129, "AVTR-ÄÖÜ"])
def test_malformed_keys_are_refused(raw: object) -> None:
    with pytest.raises(InvalidLicenseKey):
        canonical_license_key(raw)


def test_a_masked_key_shows_only_its_last_four_characters() -> None:
    assert masked_key(KEY) == "…PL3C"
    assert "7Q2M" not in masked_key(KEY)


def test_an_active_unexpired_verified_license_grants_its_seats() -> None:
    grant = verified().grant_at(NOW + timedelta(days=1), GRACE)
    assert (grant.seats, grant.status) == (25, LicenseStatus.ACTIVE)


@pytest.mark.parametrize("status", ["expired", "suspended", "revoked"])
def test_a_license_the_service_does_not_call_active_grants_nothing(status: str) -> None:
    grant = verified(status=status).grant_at(NOW, GRACE)
    assert (grant.seats, grant.status) == (0, LicenseStatus(status))


def test_a_license_past_its_expiry_grants_nothing_whatever_its_status() -> None:
    license = verified(expires_at=NOW + timedelta(hours=1))
    assert license.grant_at(NOW + timedelta(minutes=59), GRACE).seats == 25
    grant = license.grant_at(NOW + timedelta(hours=1), GRACE)
    assert (grant.seats, grant.status) == (0, LicenseStatus.EXPIRED)


def test_a_license_without_expiry_never_expires() -> None:
    assert verified(expires_at=None).grant_at(NOW + timedelta(days=10), GRACE).seats == 25


def test_a_license_never_verified_grants_nothing() -> None:
    grant = License(key=KEY, added_at=NOW, seats=25, service_status="active").grant_at(NOW, GRACE)
    assert (grant.seats, grant.status) == (0, LicenseStatus.UNVERIFIED)


def test_failures_keep_the_last_verified_grant_until_the_grace_period_ends() -> None:
    license = verified()
    license.record_failure("timed out", NOW + timedelta(days=3))
    assert license.grant_at(NOW + timedelta(days=14), GRACE).seats == 25
    grant = license.grant_at(NOW + timedelta(days=14, seconds=1), GRACE)
    assert (grant.seats, grant.status) == (0, LicenseStatus.UNVERIFIED)
    assert license.last_error == "timed out"
    assert license.failed_checks == 1


def test_a_rejection_takes_every_seat_away() -> None:
    license = verified()
    license.record_rejection("No license with this key exists.", NOW + timedelta(days=1))
    grant = license.grant_at(NOW + timedelta(days=1), GRACE)
    assert (grant.seats, grant.status) == (0, LicenseStatus.UNVERIFIED)


def test_a_clock_set_back_does_not_revive_an_expired_license() -> None:
    license = verified(expires_at=NOW + timedelta(days=1))
    license.record_answer(
        answer(expires_at=NOW + timedelta(days=1), issued_at=NOW + timedelta(days=2)), NOW + timedelta(days=2)
    )
    assert license.grant_at(NOW, GRACE).status is LicenseStatus.EXPIRED


def test_a_clock_set_back_does_not_extend_the_grace_period() -> None:
    license = verified()
    later = NOW + timedelta(days=20)
    license.record_answer(answer(issued_at=later), later)
    # Verified at day 20; a clock set back to day 5 must not count grace from day 5.
    assert license.grant_at(NOW + timedelta(days=5), GRACE).seats == 25
    assert license.grant_at(later + GRACE + timedelta(seconds=1), GRACE).seats == 0
    assert license.trusted_now(NOW) == later


def test_an_answer_older_than_one_already_seen_is_ignored() -> None:
    license = verified(issued_at=NOW)
    stale = answer(seats=100, issued_at=NOW - timedelta(days=1))
    assert not license.record_answer(stale, NOW)
    assert license.seats == 25
    assert license.last_error is not None


def test_seats_licensed_adds_what_each_license_grants() -> None:
    first, second, expired = verified(seats=10), verified(seats=5), verified(status="expired", seats=7)
    assert seats_licensed([first, second, expired], NOW, GRACE) == 15


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        verified().grant_at(datetime(2026, 11, 29, 12, 0), GRACE)  # noqa: DTZ001


def test_a_clock_set_back_after_grace_ran_out_at_a_failed_check_does_not_bring_seats_back() -> None:
    license = verified()
    license.record_failure("timed out", NOW + timedelta(days=15))
    assert license.grant_at(NOW + timedelta(days=15), GRACE).seats == 0
    assert license.grant_at(NOW + timedelta(days=5), GRACE).seats == 0


def test_grace_runs_from_when_the_service_issued_the_answer_not_from_when_it_arrived() -> None:
    license = License(key=KEY, added_at=NOW)
    assert license.record_answer(answer(issued_at=NOW - timedelta(minutes=9)), NOW)
    assert license.verified_at == NOW - timedelta(minutes=9)
    assert license.grant_at(NOW + GRACE - timedelta(minutes=9), GRACE).seats == 25
    assert license.grant_at(NOW + GRACE - timedelta(minutes=8), GRACE).seats == 0


def test_a_rejection_issued_before_the_last_accepted_answer_takes_nothing() -> None:
    license = verified(issued_at=NOW)
    assert not license.record_rejection("No license.", NOW, issued_at=NOW - timedelta(seconds=1))
    assert (license.seats, license.failed_checks) == (25, 1)
    assert license.last_error is not None and "may be a replay" in license.last_error


def test_a_rejection_issued_after_the_last_accepted_answer_takes_every_seat_and_is_remembered() -> None:
    license = verified(issued_at=NOW)
    later = NOW + timedelta(minutes=1)
    assert license.record_rejection("No license.", later, issued_at=later)
    assert (license.seats, license.latest_issued_at) == (0, later)
    # A genuine answer issued before that rejection cannot bring the seats back.
    assert not license.record_answer(answer(issued_at=NOW + timedelta(seconds=30)), later)
