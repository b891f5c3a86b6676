"""What the use cases need from the outside world, as small Protocols.

The SQL store in `adapters.sql` implements them for real; `tests.fakes` in memory.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Protocol, Self

from domain.agreement import Acceptance
from domain.alerts import OpenAlert
from domain.events import AuditEvent, EventKind, EventTally
from domain.licenses import License, ServiceAnswer
from domain.notices import Channel, DeliveryAttempt
from domain.seats import Seat


class Licenses(Protocol):
    """The license keys the administrator added."""

    def list(self) -> list[License]: ...

    def get(self, key: str) -> License | None: ...

    def add(self, license: License) -> None: ...

    def save(self, license: License) -> None: ...

    def remove(self, key: str) -> None: ...


class Seats(Protocol):
    """The users who hold seats."""

    def count(self) -> int: ...

    def holders(self, usernames: Collection[str]) -> dict[str, Seat]: ...

    def add(self, seats: Sequence[Seat]) -> None: ...

    def remove(self, username: str) -> None: ...

    def set_reserved(self, username: str, reserved: bool) -> None:
        """Reserve a holder's seat (never reclaimed, never refused as newest), or release it."""
        ...

    def idle(self, seen_before: datetime) -> list[Seat]:
        """Unreserved holders last seen (or seated, if never seen) before `seen_before`, idlest first."""
        ...

    def touch(self, usernames: Collection[str], seen_at: datetime) -> None:
        """Record, in this unit of work, that these holders started Avtor at `seen_at`."""
        ...

    def search(self, contains: str, limit: int | None = None, offset: int = 0) -> list[Seat]:
        """Holders whose normalized name contains `contains`, oldest seat first."""
        ...

    def count_matching(self, contains: str) -> int:
        """How many holders' normalized names contain `contains`."""
        ...

    def list(self, limit: int | None = None, offset: int = 0) -> list[Seat]: ...


class Events(Protocol):
    """The audit log."""

    def record(self, events: Sequence[AuditEvent]) -> None: ...

    def for_requests(self, request_ids: Collection[str]) -> dict[str, AuditEvent]: ...

    def tally(self, kind: EventKind, limit: int | None = None) -> list[EventTally]:
        """The events of `kind` counted per subject and outcome; the `limit` most recent, latest first."""
        ...

    def list(
        self,
        kinds: Collection[EventKind] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[AuditEvent]: ...


class Agreements(Protocol):
    """Acceptances of the license agreement."""

    def latest(self) -> Acceptance | None: ...

    def record(self, acceptance: Acceptance) -> None: ...


class Alerts(Protocol):
    """The alerts raised and not yet resolved."""

    def open(self) -> list[OpenAlert]: ...

    def replace(self, alerts: Sequence[OpenAlert]) -> None:
        """Remember exactly `alerts` as the open ones."""
        ...


class NoticeChannels(Protocol):
    """Where notices go, and every attempt to deliver one."""

    def add_channel(self, channel: Channel) -> None: ...

    def channels(self) -> list[Channel]: ...

    def channel(self, name: str) -> Channel | None: ...

    def remove_channel(self, name: str) -> bool: ...

    def record_attempt(self, attempt: DeliveryAttempt) -> None: ...

    def attempts(self, limit: int = 100) -> list[DeliveryAttempt]: ...


class UnitOfWork(Protocol):
    """One transaction over the seat ledger.

    A writing unit of work holds the ledger's lock from start to end, so that
    counting seats, granting one and committing cannot interleave with another
    writer. Nothing is kept unless `commit` is called.
    """

    @property
    def licenses(self) -> Licenses: ...

    @property
    def seats(self) -> Seats: ...

    @property
    def events(self) -> Events: ...

    @property
    def agreements(self) -> Agreements: ...

    @property
    def alerts(self) -> Alerts: ...

    @property
    def installation_id(self) -> str: ...

    def look_up(
        self, usernames: Collection[str], request_ids: Collection[str]
    ) -> tuple[dict[str, Seat], dict[str, AuditEvent]]:
        """The seats of `usernames` and the decisions recorded for `request_ids`, read together."""
        ...

    def commit(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


@dataclass(frozen=True)
class SeatGlance:
    """What the cheap path needs to know of one seat holder."""

    last_seen_at: datetime | None
    request_id: str | None


@dataclass(frozen=True)
class Glance:
    """A consistent look at the ledger without taking its lock."""

    seats_in_use: int
    licenses: Sequence[License]
    holders: dict[str, SeatGlance] = field(default_factory=dict)


class Store(Protocol):
    """The shared seat ledger."""

    def writing(self) -> UnitOfWork:
        """A unit of work that holds the ledger's lock."""
        ...

    def reading(self) -> UnitOfWork:
        """A read-only unit of work on a consistent snapshot; never blocks writers."""
        ...

    def glance(self, usernames: Collection[str]) -> Glance:
        """Seats in use, the licenses and which of `usernames` hold seats, in one cheap read."""
        ...

    def touch_seats(self, usernames: Collection[str], seen_at: datetime) -> None:
        """Record that these seat holders started Avtor at `seen_at` (no lock needed)."""
        ...


@dataclass(frozen=True)
class Verified:
    """The license service answered about the key, and the answer is genuine."""

    answer: ServiceAnswer


@dataclass(frozen=True)
class Rejected:
    """The license service explicitly refused the key (a signed "unknown"), or the request (400)."""

    message: str
    # A 400 refuses the request, not the key: a key validated before keeps what it was granted.
    malformed_request: bool = False
    # When the service signed the refusal; None for a 400, which is never signed.
    issued_at: datetime | None = None


@dataclass(frozen=True)
class Unverifiable:
    """No trustworthy answer: the service was unreachable or failed, or its answer failed a check.

    "Could not verify" is never "invalid" and never "valid": what was verified last stands.
    """

    reason: str
    # The service asked not to be called again before this long (Retry-After).
    retry_after: timedelta | None = None


ValidationResult = Verified | Rejected | Unverifiable


class LicenseService(Protocol):
    """The vendor's license service."""

    def validate(self, key: str, installation_id: str, seats_in_use: int) -> ValidationResult:
        """Ask the service what `key` grants."""
        ...
