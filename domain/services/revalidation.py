"""Re-validating licenses with the license service: now for the administrator, or when due.

Whoever checks a license first claims it in a short transaction that pushes its
due time forward by a lease, so two schedulers (or a scheduler and an
administrator) do not check it at once. The service is asked outside any
transaction and the answer written in another short one. A check that dies
half-way leaves only its lease behind: the license is due again when it runs out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from domain.events import EventKind
from domain.licenses import License, LicenseStatus, masked_key, retry_delay
from domain.moments import format_instant
from domain.ports import LicenseService, Rejected, Store, Unverifiable, ValidationResult, Verified
from domain.refusals import Refused
from domain.services.ledger import count_seats
from domain.services.licenses import LicenseView, read_key, seats_until

log = logging.getLogger(__name__)

# The actor of scheduled re-validations in the audit log.
SCHEDULE = "schedule"

Clock = Callable[[], datetime]


class CheckOutcome(StrEnum):
    """What one check of a license with the license service came to."""

    VERIFIED = "verified"
    REJECTED = "rejected"
    COULD_NOT_VERIFY = "could_not_verify"


@dataclass(frozen=True)
class RevalidationRules:
    """How often licenses are checked, how long one check may take, how long seats outlast failures."""

    revalidate_every: timedelta
    lease: timedelta
    grace_period: timedelta


@dataclass(frozen=True)
class Revalidation:
    """One check of a license and where it left the license (None: removed meanwhile)."""

    key: str
    outcome: CheckOutcome
    message: str
    view: LicenseView | None


@dataclass(frozen=True)
class _Claim:
    """A license claimed for a check, as it was before the claim, and what the service is told."""

    license: License
    installation_id: str
    seats_in_use: int


def refresh_license(
    raw_key: str,
    requested_by: str,
    store: Store,
    service: LicenseService,
    now: datetime,
    rules: RevalidationRules,
) -> Revalidation:
    """Re-validate one license now, whenever it is due."""
    key = read_key(raw_key)
    claim = _claim(
        store, lambda licenses: next((item for item in licenses if item.key == key), None), now, rules
    )
    if claim is None:
        raise Refused(f"No license with the key {masked_key(key)} has been added: add it first.")
    return _check(store, service, claim, now, rules, requested_by)


def refresh_all_licenses(
    requested_by: str,
    store: Store,
    service: LicenseService,
    clock: Clock,
    rules: RevalidationRules,
    until: datetime | None = None,
) -> list[Revalidation]:
    """Re-validate every license now, one after the other; none is begun after `until`."""
    return _check_each(store, service, clock, rules, requested_by, due_by=None, until=until)


def revalidate_due_licenses(
    store: Store,
    service: LicenseService,
    clock: Clock,
    rules: RevalidationRules,
    until: datetime | None = None,
) -> list[Revalidation]:
    """Re-validate each license whose check is due, once, however many checks it missed.

    No check is begun after `until`: the licenses left are still due, for the next run.
    """
    started = clock()
    if _most_overdue(store.glance(()).licenses, started, skip=()) is None:
        return []  # the usual case, answered without taking the ledger's lock
    return _check_each(store, service, clock, rules, SCHEDULE, due_by=started, until=until)


def _check_each(
    store: Store,
    service: LicenseService,
    clock: Clock,
    rules: RevalidationRules,
    actor: str,
    due_by: datetime | None,
    until: datetime | None,
) -> list[Revalidation]:
    """Claim and check licenses one at a time, each at most once, until none is left or time is up.

    A run checks at least one license, so that even a slow license service sees progress.
    """
    checked: list[Revalidation] = []
    done: set[str] = set()
    while True:
        now = clock()
        if until is not None and checked and now >= until:
            return checked
        claim = _claim(store, lambda licenses: _most_overdue(licenses, due_by, done), now, rules)
        if claim is None:
            return checked
        done.add(claim.license.key)
        checked.append(_check(store, service, claim, now, rules, actor))


def _most_overdue(
    licenses: Collection[License], due_by: datetime | None, skip: Collection[str]
) -> License | None:
    """The license due longest ago by `due_by` (None: any license), leaving out `skip`."""
    due = [
        license
        for license in licenses
        if license.key not in skip
        and (due_by is None or license.next_check_at is None or license.next_check_at <= due_by)
    ]
    return min(due, key=lambda license: license.next_check_at or license.added_at, default=None)


def _claim(
    store: Store, pick: Callable[[list[License]], License | None], now: datetime, rules: RevalidationRules
) -> _Claim | None:
    """Take the license `pick` chooses for a check: its due time moves past the check's lease."""
    with store.writing() as uow:
        license = pick(uow.licenses.list())
        if license is None:
            return None
        leased = license.copy()
        leased.next_check_at = now + rules.lease
        uow.licenses.save(leased)
        claim = _Claim(license, uow.installation_id, uow.seats.count())
        uow.commit()
    return claim


def _check(
    store: Store, service: LicenseService, claim: _Claim, now: datetime, rules: RevalidationRules, actor: str
) -> Revalidation:
    """Ask the service about a claimed license (outside any transaction), then write what it said."""
    key = claim.license.key
    result = service.validate(key, claim.installation_id, claim.seats_in_use)
    with store.writing() as uow:
        license = uow.licenses.get(key)
        if license is None:
            return Revalidation(
                key, _outcome(result, None), f"The license {masked_key(key)} was removed meanwhile.", None
            )
        # Another check of this license finished while this one waited for the service.
        overtaken = license.last_checked_at != claim.license.last_checked_at
        before = count_seats(uow, now, rules.grace_period)
        if _take(license, result, now, rules, overtaken):
            uow.licenses.save(license)
            after = count_seats(uow, now, rules.grace_period)
            message = describe_check(license, result, now, rules.grace_period)
            event = before.event(EventKind.LICENSE_REFRESHED, now, actor, masked_key(key), after, message)
            # The check's result is kept with it: the metrics count checks by result from the store.
            uow.events.record([replace(event, outcome=_outcome(result, license).value)])
            uow.commit()
        else:
            message = "Another check of this license finished first; its result stands."
    view = LicenseView.of(license, now, rules.grace_period)
    outcome = _outcome(result, license)
    log.info(
        "License %s checked: %s.",
        masked_key(key),
        outcome.value,
        extra={"event": "license_check", "license": masked_key(key), "result": outcome.value},
    )
    return Revalidation(key, outcome, message, view)


def _take(
    license: License, result: ValidationResult, now: datetime, rules: RevalidationRules, overtaken: bool
) -> bool:
    """Apply a check's result to `license`; False if a check that finished first makes it moot."""
    issued_at = _issued_at(result)
    newest = license.latest_issued_at
    if overtaken and issued_at is not None and newest is not None and issued_at < newest:
        return False
    if isinstance(result, Verified):
        if license.record_answer(result.answer, now):
            license.next_check_at = now + rules.revalidate_every
            return True
        log.error("License %s: %s", masked_key(license.key), license.last_error)
    elif isinstance(result, Rejected) and not result.malformed_request:
        message = f"The license service refused the key: {result.message}"
        if license.record_rejection(message, now, result.issued_at):
            license.next_check_at = now + rules.revalidate_every
            return True
        log.error("License %s: %s", masked_key(license.key), license.last_error)
    elif overtaken:
        return False
    else:
        license.record_failure(_failure_reason(result), now)
    delay = retry_delay(license.failed_checks, rules.revalidate_every)
    if isinstance(result, Unverifiable) and result.retry_after is not None:
        delay = max(delay, result.retry_after)
    license.next_check_at = now + delay
    return True


def _issued_at(result: ValidationResult) -> datetime | None:
    """When the service issued a signed answer; None for anything else."""
    if isinstance(result, Verified):
        return result.answer.issued_at
    if isinstance(result, Rejected):
        return result.issued_at
    return None


def _failure_reason(result: ValidationResult) -> str:
    if isinstance(result, Rejected):
        # A 400 refuses the request, not the key (a client or service bug): the last answer stands.
        return f"The license service refused the request as malformed: {result.message}"
    assert isinstance(result, Unverifiable)
    return f"The license could not be verified: {result.reason}."


def _outcome(result: ValidationResult, license: License | None) -> CheckOutcome:
    # A signed answer issued before one already taken was refused: it counts as a failed check.
    refused = license is not None and license.failed_checks > 0
    if isinstance(result, Verified) and not refused:
        return CheckOutcome.VERIFIED
    if isinstance(result, Rejected) and not result.malformed_request and not refused:
        return CheckOutcome.REJECTED
    return CheckOutcome.COULD_NOT_VERIFY


def describe_check(license: License, result: ValidationResult, now: datetime, grace_period: timedelta) -> str:
    """What a check left, as a sentence for the administrator."""
    name = f"The license {masked_key(license.key)}"
    grant = license.grant_at(now, grace_period)
    rejected = isinstance(result, Rejected) and not result.malformed_request and not license.failed_checks
    if license.last_error is not None and isinstance(result, Rejected) and rejected:
        return (
            f"{name} was refused by the license service: {result.message} It grants no seats; "
            "remove it, or ask the vendor about the key."
        )
    if license.last_error is None:
        if grant.status is LicenseStatus.ACTIVE:
            return f"{name} is verified: {seats_until(grant.seats, license.expires_at)}."
        return f"{name} is verified, but it is {grant.status.value}: it grants no seats."
    retry = (
        ""
        if license.next_check_at is None
        else f" It is checked again at {format_instant(license.next_check_at)}."
    )
    if grant.seats and license.verified_at is not None:
        keeps = f"It keeps its {grant.seats} seats until {format_instant(license.verified_at + grace_period)}"
        return f"{license.last_error} {keeps} unless the license service confirms it before.{retry}"
    return f"{license.last_error} It grants no seats until the license service confirms it.{retry}"
