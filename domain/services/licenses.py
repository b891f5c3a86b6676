"""The license lifecycle: add a key, refresh it, remove it.

The license service is asked outside any transaction, so a slow service never
holds the ledger's lock; the answer is then written in a short transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.events import EventKind
from domain.licenses import InvalidLicenseKey, License, LicenseStatus, canonical_license_key, masked_key
from domain.moments import format_instant
from domain.ports import LicenseService, Rejected, Store, Unverifiable, ValidationResult, Verified
from domain.refusals import Refused
from domain.services.agreement import require_agreement
from domain.services.ledger import count_seats


@dataclass(frozen=True)
class LicenseView:
    """A license as the administrator's screen shows it."""

    id: str
    key: str
    status: LicenseStatus
    seats: int
    seats_granted: int
    expires_at: datetime | None
    customer: str
    added_at: datetime
    verified_at: datetime | None
    grace_ends_at: datetime | None
    last_checked_at: datetime | None
    next_check_at: datetime | None
    last_error: str | None
    failed_checks: int

    @classmethod
    def of(cls, license: License, now: datetime, grace_period: timedelta) -> LicenseView:
        """How `license` stands at `now`."""
        grant = license.grant_at(now, grace_period)
        return cls(
            id=license.id,
            key=license.key,
            status=grant.status,
            seats=license.seats,
            seats_granted=grant.seats,
            expires_at=license.expires_at,
            customer=license.customer,
            added_at=license.added_at,
            verified_at=license.verified_at,
            grace_ends_at=None if license.verified_at is None else license.verified_at + grace_period,
            last_checked_at=license.last_checked_at,
            next_check_at=license.next_check_at,
            last_error=license.last_error,
            failed_checks=license.failed_checks,
        )


def add_license(
    raw_key: str,
    added_by: str,
    store: Store,
    service: LicenseService,
    now: datetime,
    grace_period: timedelta,
    revalidate_every: timedelta,
) -> LicenseView:
    """Validate a key with the license service and, if it grants seats, add it."""
    key = read_key(raw_key)
    with store.reading() as uow:
        require_agreement(uow)
        _refuse_if_added(uow.licenses.get(key), key)
        installation_id, seats_in_use = uow.installation_id, uow.seats.count()
    result = service.validate(key, installation_id, seats_in_use)
    license = License(key=key, added_at=now)
    _refuse_unless_granting(license, result, now, grace_period)
    with store.writing() as uow:
        require_agreement(uow)
        _refuse_if_added(uow.licenses.get(key), key)
        before = count_seats(uow, now, grace_period)
        license.next_check_at = now + revalidate_every
        uow.licenses.add(license)
        after = count_seats(uow, now, grace_period)
        uow.events.record([before.event(EventKind.LICENSE_ADDED, now, added_by, masked_key(key), after)])
        uow.commit()
    return LicenseView.of(license, now, grace_period)


def remove_license(
    raw_key: str, removed_by: str, store: Store, now: datetime, grace_period: timedelta
) -> LicenseView:
    """Remove a key; its seats are gone at once."""
    key = read_key(raw_key)
    with store.writing() as uow:
        license = uow.licenses.get(key)
        if license is None:
            raise Refused(f"No license with the key {masked_key(key)} has been added: nothing was removed.")
        before = count_seats(uow, now, grace_period)
        uow.licenses.remove(key)
        after = count_seats(uow, now, grace_period)
        uow.events.record([before.event(EventKind.LICENSE_REMOVED, now, removed_by, masked_key(key), after)])
        uow.commit()
    return LicenseView.of(license, now, grace_period)


def license_key(license_id: str, store: Store) -> str:
    """The key of the license named by `license_id`, or a refusal when there is none."""
    with store.reading() as uow:
        license = next((item for item in uow.licenses.list() if item.id == license_id), None)
    if license is None:
        raise Refused(
            f"No license has the id {license_id}: it was removed, or never added. "
            "See the licenses with `avtorlm license list`."
        )
    return license.key


def seats_until(seats: int, expires_at: datetime | None) -> str:
    """What a license grants in words: "25 seats until 2027-06-30T23:59:59Z" or "3 seats with no expiry"."""
    return f"{seats} seats " + (
        "with no expiry" if expires_at is None else f"until {format_instant(expires_at)}"
    )


def read_key(raw_key: object) -> str:
    """The canonical key, or a refusal saying what is wrong with what was typed."""
    try:
        return canonical_license_key(raw_key)
    except InvalidLicenseKey as error:
        raise Refused(str(error)) from None


def _refuse_if_added(existing: License | None, key: str) -> None:
    if existing is not None:
        raise Refused(
            f"The license {masked_key(key)} has already been added: refresh it instead to pick up changes."
        )


def _refuse_unless_granting(
    license: License, result: ValidationResult, now: datetime, grace_period: timedelta
) -> None:
    """Take a validation result for a new key, or refuse the key with the reason."""
    if isinstance(result, Unverifiable):
        raise Refused(
            f"The key could not be validated: {result.reason}. "
            "The key was not added: try again in a few minutes."
        )
    if isinstance(result, Rejected):
        raise Refused(f"The license service refused the key: {result.message} The key was not added.")
    assert isinstance(result, Verified)
    if not license.record_answer(result.answer, now):
        raise Refused("The license service sent an outdated answer: try again. The key was not added.")
    grant = license.grant_at(now, grace_period)
    if grant.status is not LicenseStatus.ACTIVE:
        raise Refused(
            f"The license service reports this key as {grant.status.value}: it grants no seats, "
            "so it was not added. Contact the vendor about this key."
        )
