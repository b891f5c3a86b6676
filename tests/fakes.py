"""In-memory implementations of the domain's ports, for unit tests of the use cases."""

from __future__ import annotations

import copy
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime
from types import TracebackType
from typing import Self

from domain.agreement import Acceptance
from domain.alerts import OpenAlert
from domain.events import AuditEvent, EventKind, EventTally
from domain.licenses import License
from domain.ports import Glance, SeatGlance, ValidationResult
from domain.seats import Seat, seen_last


class _Ledger:
    def __init__(self) -> None:
        self.licenses: dict[str, License] = {}
        self.seats: dict[str, Seat] = {}
        self.events: list[AuditEvent] = []
        self.acceptances: list[Acceptance] = []
        self.alerts: list[OpenAlert] = []


class FakeStore:
    """The ledger in memory; a unit of work works on a copy and swaps it in on commit."""

    installation_id = "00000000-0000-4000-8000-000000000000"

    def __init__(self) -> None:
        self.ledger = _Ledger()
        self.writes = 0
        self.touches: list[tuple[frozenset[str], datetime]] = []

    def writing(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self, writing=True)

    def reading(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self, writing=False)

    def glance(self, usernames: Collection[str]) -> Glance:
        seats = self.ledger.seats
        return Glance(
            len(seats),
            [license.copy() for license in self.ledger.licenses.values()],
            {
                name: SeatGlance(seats[name].last_seen_at, seats[name].request_id)
                for name in usernames
                if name in seats
            },
        )

    def touch_seats(self, usernames: Collection[str], seen_at: datetime) -> None:
        self.touches.append((frozenset(usernames), seen_at))
        for name in usernames:
            if name in self.ledger.seats:
                self.ledger.seats[name] = replace(self.ledger.seats[name], last_seen_at=seen_at)


class FakeUnitOfWork:
    def __init__(self, store: FakeStore, writing: bool) -> None:
        self._store = store
        self._writing = writing
        self.installation_id = store.installation_id

    def __enter__(self) -> Self:
        self._ledger = copy.deepcopy(self._store.ledger)
        self.licenses = _Licenses(self._ledger)
        self.seats = _Seats(self._ledger)
        self.events = _Events(self._ledger)
        self.agreements = _Agreements(self._ledger)
        self.alerts = _Alerts(self._ledger)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        del self._ledger

    def look_up(
        self, usernames: Collection[str], request_ids: Collection[str]
    ) -> tuple[dict[str, Seat], dict[str, AuditEvent]]:
        return self.seats.holders(usernames), self.events.for_requests(request_ids)

    def commit(self) -> None:
        if not self._writing:
            raise RuntimeError("a reading unit of work cannot change the store")
        self._store.ledger = copy.deepcopy(self._ledger)
        self._store.writes += 1


class _Licenses:
    def __init__(self, ledger: _Ledger) -> None:
        self._ledger = ledger

    def list(self) -> list[License]:
        return [license.copy() for license in self._ledger.licenses.values()]

    def get(self, key: str) -> License | None:
        license = self._ledger.licenses.get(key)
        return None if license is None else license.copy()

    def add(self, license: License) -> None:
        assert license.key not in self._ledger.licenses
        self._ledger.licenses[license.key] = license.copy()

    def save(self, license: License) -> None:
        self._ledger.licenses[license.key] = license.copy()

    def remove(self, key: str) -> None:
        self._ledger.licenses.pop(key, None)


class _Seats:
    def __init__(self, ledger: _Ledger) -> None:
        self._ledger = ledger

    def count(self) -> int:
        return len(self._ledger.seats)

    def holders(self, usernames: Collection[str]) -> dict[str, Seat]:
        return {name: self._ledger.seats[name] for name in usernames if name in self._ledger.seats}

    def add(self, seats: Sequence[Seat]) -> None:
        for seat in seats:
            assert seat.username not in self._ledger.seats, f"{seat.username} would hold two seats"
            self._ledger.seats[seat.username] = seat

    def remove(self, username: str) -> None:
        self._ledger.seats.pop(username, None)

    def set_reserved(self, username: str, reserved: bool) -> None:
        if username in self._ledger.seats:
            self._ledger.seats[username] = replace(self._ledger.seats[username], reserved=reserved)

    def idle(self, seen_before: datetime) -> list[Seat]:
        idle = [s for s in self._ledger.seats.values() if not s.reserved and seen_last(s) < seen_before]
        return sorted(idle, key=lambda seat: (seen_last(seat), seat.username))

    def touch(self, usernames: Collection[str], seen_at: datetime) -> None:
        for name in usernames:
            seat = self._ledger.seats.get(name)
            if seat is not None and (seat.last_seen_at is None or seat.last_seen_at < seen_at):
                self._ledger.seats[name] = replace(seat, last_seen_at=seen_at)

    def search(self, contains: str, limit: int | None = None, offset: int = 0) -> list[Seat]:
        ordered = sorted(self._ledger.seats.values(), key=lambda seat: (seat.assigned_at, seat.username))
        matching = [seat for seat in ordered if contains in seat.username]
        return matching[offset : None if limit is None else offset + limit]

    def count_matching(self, contains: str) -> int:
        return sum(contains in name for name in self._ledger.seats)

    def list(self, limit: int | None = None, offset: int = 0) -> list[Seat]:
        ordered = sorted(self._ledger.seats.values(), key=lambda seat: (seat.assigned_at, seat.username))
        return ordered[offset : None if limit is None else offset + limit]


class _Events:
    def __init__(self, ledger: _Ledger) -> None:
        self._ledger = ledger

    def record(self, events: Sequence[AuditEvent]) -> None:
        for event in events:
            assert event.request_id is None or event.request_id not in self.for_requests([event.request_id])
            self._ledger.events.append(replace(event, id=len(self._ledger.events) + 1))

    def for_requests(self, request_ids: Collection[str]) -> dict[str, AuditEvent]:
        return {
            event.request_id: event
            for event in self._ledger.events
            if event.request_id is not None and event.request_id in request_ids
        }

    def tally(self, kind: EventKind, limit: int | None = None) -> list[EventTally]:
        groups: dict[tuple[str, str | None], list[AuditEvent]] = {}
        for event in self._ledger.events:
            if event.kind == kind:
                groups.setdefault((event.subject, event.outcome), []).append(event)
        tallies = [
            EventTally(kind, subject, outcome, len(events), events[0].at, events[-1].at)
            for (subject, outcome), events in groups.items()
        ]
        tallies.sort(key=lambda tally: tally.last_at, reverse=True)
        return tallies[:limit]

    def list(
        self,
        kinds: Collection[EventKind] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[AuditEvent]:
        chosen = [
            event
            for event in self._ledger.events
            if (not kinds or event.kind in kinds)
            and (since is None or event.at >= since)
            and (until is None or event.at < until)
        ]
        return chosen[-limit:] if limit else chosen


class _Agreements:
    def __init__(self, ledger: _Ledger) -> None:
        self._ledger = ledger

    def latest(self) -> Acceptance | None:
        return self._ledger.acceptances[-1] if self._ledger.acceptances else None

    def record(self, acceptance: Acceptance) -> None:
        self._ledger.acceptances.append(acceptance)


class _Alerts:
    def __init__(self, ledger: _Ledger) -> None:
        self._ledger = ledger

    def open(self) -> list[OpenAlert]:
        return list(self._ledger.alerts)

    def replace(self, alerts: Sequence[OpenAlert]) -> None:
        self._ledger.alerts = list(alerts)


class FakeLicenseService:
    """Answers from a table of results by key; records what it was asked."""

    def __init__(self, results: dict[str, ValidationResult] | None = None) -> None:
        self.results = dict(results or {})
        self.calls: list[tuple[str, str, int]] = []

    def validate(self, key: str, installation_id: str, seats_in_use: int) -> ValidationResult:
        self.calls.append((key, installation_id, seats_in_use))
        return self.results[key]
