"""Avtor license keys and what each grants at a given instant.

The rules follow the license service contract: only an active, unexpired,
verified license grants seats; a license whose service cannot be reached keeps
what it last granted for a grace period, counted from when the service issued
its last accepted answer; a clock that goes backwards never extends a license;
an answer issued before one already accepted is refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from domain.moments import format_instant, require_utc

MAX_KEY_LENGTH = 128


class LicenseStatus(StrEnum):
    """How a license stands, as the administrator's screen shows it."""

    ACTIVE = "active"
    EXPIRED = "expired"
    SUSPENDED = "suspended"
    REVOKED = "revoked"
    UNVERIFIED = "unverified"


# What the license service may answer in `license.status`.
SERVICE_STATUSES = frozenset({"active", "expired", "suspended", "revoked"})

# After a failed check a license is tried again soon, then less and less often, so a
# service that is down for days is asked about once an hour, not once a minute.
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=1)


class InvalidLicenseKey(ValueError):
    """A license key that cannot be sent to the license service at all."""


def canonical_license_key(raw: object) -> str:
    """Return the key trimmed and in upper case, the form the service knows."""
    if not isinstance(raw, str):
        raise InvalidLicenseKey("The license key is missing: type the key as the vendor sent it.")
    key = raw.strip().upper()
    if not key:
        raise InvalidLicenseKey("The license key is empty: type the key as the vendor sent it.")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidLicenseKey(
            f"The license key is {len(key)} characters long; keys have at most {MAX_KEY_LENGTH}: "
            "check that you pasted only the key."
        )
    if not all(
        character.isascii() and character.isprintable() and not character.isspace() for character in key
    ):
        raise InvalidLicenseKey(
            "The license key contains spaces or characters that are not letters, digits or dashes: "
            "check that you pasted only the key."
        )
    return key


def masked_key(key: str) -> str:
    """The key with all but its last four characters hidden, for logs and screens."""
    return "…" + key[-4:] if len(key) > 4 else "…"


@dataclass(frozen=True)
class ServiceAnswer:
    """A verified answer of the license service about one key it knows."""

    key: str
    status: str
    seats: int
    expires_at: datetime | None
    issued_at: datetime
    customer: str = ""


@dataclass(frozen=True)
class Grant:
    """What a license grants at one instant, and why."""

    seats: int
    status: LicenseStatus


@dataclass
class License:
    """A key the administrator added, with what the license service last said of it."""

    key: str
    added_at: datetime
    seats: int = 0
    service_status: str | None = None  # None: no verified answer stands
    expires_at: datetime | None = None
    customer: str = ""
    verified_at: datetime | None = None
    latest_issued_at: datetime | None = None
    last_checked_at: datetime | None = None
    last_error: str | None = None
    next_check_at: datetime | None = None
    failed_checks: int = 0
    # How tasks and messages name the license: unlike its key, it is no secret.
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def grant_at(self, now: datetime, grace_period: timedelta) -> Grant:
        """What this license grants at `now`, with its status."""
        if self.verified_at is None or self.service_status is None:
            return Grant(0, LicenseStatus.UNVERIFIED)
        if self.service_status != LicenseStatus.ACTIVE:
            return Grant(0, LicenseStatus(self.service_status))
        clock = self.trusted_now(now)
        if self.expires_at is not None and clock >= self.expires_at:
            return Grant(0, LicenseStatus.EXPIRED)
        if clock - self.verified_at > grace_period:
            return Grant(0, LicenseStatus.UNVERIFIED)
        return Grant(self.seats, LicenseStatus.ACTIVE)

    def trusted_now(self, now: datetime) -> datetime:
        """`now`, but never earlier than an instant this license has already seen.

        The instants seen include failed checks: once grace has run out at a check, a
        clock set back to before that check must not bring the seats back.
        """
        seen = [
            moment
            for moment in (self.latest_issued_at, self.verified_at, self.last_checked_at)
            if moment is not None
        ]
        return max([require_utc(now), *seen])

    def record_answer(self, answer: ServiceAnswer, now: datetime) -> bool:
        """Take a verified answer; refuse (False) one issued before an answer already accepted.

        Grace runs from the answer's `issued_at`, not from when it was received.
        """
        if not self._refuse_if_outdated(answer.issued_at, now):
            return False
        self.seats = answer.seats
        self.service_status = answer.status
        self.expires_at = answer.expires_at
        self.customer = answer.customer
        self.verified_at = require_utc(answer.issued_at)
        self.latest_issued_at = answer.issued_at
        self._checked(now)
        self.last_error = None
        self.failed_checks = 0
        return True

    def record_rejection(self, message: str, now: datetime, issued_at: datetime | None = None) -> bool:
        """The service does not know the key any more: it grants nothing from now on.

        A rejection issued before an answer already accepted is refused (False).
        """
        if issued_at is not None and not self._refuse_if_outdated(issued_at, now):
            return False
        self.service_status = None
        self.verified_at = None
        self.seats = 0
        if issued_at is not None:
            self.latest_issued_at = issued_at
        self._checked(now)
        self.last_error = message
        self.failed_checks = 0
        return True

    def _refuse_if_outdated(self, issued_at: datetime, now: datetime) -> bool:
        """False, with the failure recorded, if `issued_at` is earlier than an answer already accepted."""
        if self.latest_issued_at is None or issued_at >= self.latest_issued_at:
            return True
        self.record_failure(outdated_answer(issued_at, self.latest_issued_at), now)
        return False

    def record_failure(self, reason: str, now: datetime) -> None:
        """The service could not confirm the key; what was verified last still stands."""
        self._checked(now)
        self.last_error = reason
        self.failed_checks += 1

    def _checked(self, now: datetime) -> None:
        """Note a check at `now`; a clock set back since an earlier check does not move it back."""
        now = require_utc(now)
        self.last_checked_at = now if self.last_checked_at is None else max(now, self.last_checked_at)

    def copy(self) -> License:
        """An independent copy, for comparing before and after."""
        return replace(self)


def outdated_answer(issued_at: datetime, latest_issued_at: datetime) -> str:
    """Why an answer issued before the latest accepted one is not trusted, for the administrator."""
    return (
        "The license could not be verified: the license service's answer was not trusted: it was "
        f"issued at {format_instant(issued_at)}, before the answer already accepted for this key "
        f"({format_instant(latest_issued_at)}), so it may be a replay of an old answer. What was "
        "verified last stands; if this repeats, check what sits between the manager and the license "
        "service (AVTOR_LICENSE_SERVER_URL)."
    )


def retry_delay(failed_checks: int, revalidate_every: timedelta) -> timedelta:
    """How long after its `failed_checks`-th failed check in a row a license is checked again."""
    doubled = FIRST_RETRY * (1 << min(max(failed_checks - 1, 0), 16))
    return min(doubled, LONGEST_RETRY, revalidate_every)


def seats_licensed(licenses: Iterable[License], now: datetime, grace_period: timedelta) -> int:
    """The seats all licenses grant together at `now`."""
    return sum(license.grant_at(now, grace_period).seats for license in licenses)
