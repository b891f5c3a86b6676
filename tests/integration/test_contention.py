"""Seat claims racing for real: many OS processes against one SQLite file or PostgreSQL database."""

from __future__ import annotations

import multiprocessing
import random
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from threading import Barrier

from adapters.sql import SqlStore, create_store_engine
from domain.enrolment import EnrolmentRequest, Outcome
from domain.events import EventKind
from domain.licenses import ServiceAnswer
from domain.ports import Verified
from domain.services.agreement import accept_agreement
from domain.services.enrolment import enrol_editors
from domain.services.licenses import add_license, remove_license
from domain.usernames import display_username, normalize_username
from tests.fakes import FakeLicenseService

GRACE = timedelta(days=14)
EVERY = timedelta(days=3)
PROCESSES = 8
CLAIMS_PER_PROCESS = 200
EDITORS = 300


def now() -> datetime:
    return datetime.now(UTC)


def service_for(key: str, seats: int) -> FakeLicenseService:
    answer = ServiceAnswer(key, "active", seats, now() + timedelta(days=365), now(), "Example Corp")
    return FakeLicenseService({key: Verified(answer)})


def set_up_licenses(url: str, licenses: dict[str, int]) -> None:
    store = SqlStore(create_store_engine(url))
    accept_agreement("admin", store, now(), GRACE)
    for key, seats in licenses.items():
        add_license(key, "admin", store, service_for(key, seats), now(), GRACE, EVERY)
    store.engine.dispose()


def spelling(name: str, rng: random.Random) -> str:
    """The same user as a host might send it: any letter case, stray spaces."""
    mixed = "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in name)
    return " " * rng.randint(0, 1) + mixed + " " * rng.randint(0, 1)


def claim(url: str, process: int, start: Barrier) -> list[tuple[str, str, str | None]]:
    """Make this process's claims, one transaction each; return (user, outcome, request id)."""
    rng = random.Random(process)
    store = SqlStore(create_store_engine(url))
    store.glance([])  # connect before the start, so that every process starts at once
    start.wait()
    answers = []
    for number in range(CLAIMS_PER_PROCESS):
        raw = spelling(f"sitecore\\Editor{rng.randrange(EDITORS)}", rng)
        request_id = f"p{process}-{number}" if number % 4 == 0 else None
        request = EnrolmentRequest(normalize_username(raw), display_username(raw), request_id)
        [decision] = enrol_editors([request], store, now(), GRACE)
        answers.append((request.username, decision.outcome.value, request_id))
        if number % 20 == 0 and request_id is not None:
            # The host redelivers the same message: it must not take a second seat.
            [again] = enrol_editors([request], store, now(), GRACE)
            assert again.outcome == decision.outcome, (decision, again)
    store.engine.dispose()
    return answers


def remove_licenses_while_claims_run(url: str, keys: list[str], start: Barrier) -> int:
    """Remove licenses one by one as seats fill up, then add one back."""
    store = SqlStore(create_store_engine(url))
    store.glance([])
    start.wait()
    changes = 0
    for number, key in enumerate(keys):
        while store.glance([]).seats_in_use < number * 8:
            time.sleep(0.001)
        remove_license(key, "admin", store, now(), GRACE)
        changes += 1
    add_license(keys[0], "admin", store, service_for(keys[0], 10), now(), GRACE, EVERY)
    store.engine.dispose()
    return changes + 1


def race(
    url: str, remover_keys: list[str] | None = None
) -> tuple[list[list[tuple[str, str, str | None]]], int]:
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(PROCESSES + 1, mp_context=context) as pool:
        start = manager.Barrier(PROCESSES + bool(remover_keys))
        claims = [pool.submit(claim, url, process, start) for process in range(PROCESSES)]
        removal = (
            pool.submit(remove_licenses_while_claims_run, url, remover_keys, start) if remover_keys else None
        )
        answers = [future.result(timeout=240) for future in claims]
        changes = removal.result(timeout=240) if removal else 0
    return answers, changes


def test_racing_processes_never_grant_more_seats_than_licensed(store_url: str) -> None:
    set_up_licenses(store_url, {"AVTR-0001": 60, "AVTR-0002": 40})
    answers, _ = race(store_url)

    assert [len(process) for process in answers] == [CLAIMS_PER_PROCESS] * PROCESSES
    decisions = [answer for process in answers for answer in process]
    store = SqlStore(create_store_engine(store_url))
    with store.reading() as uow:
        holders = {seat.username for seat in uow.seats.list()}
        assert uow.seats.total_rows() == uow.seats.count() == 100
        grants = uow.events.list(kinds=[EventKind.SEAT_GRANTED])
    assert len(holders) == 100
    assert all(name == normalize_username(name) for name in holders)
    granted = Counter(user for user, outcome, _ in decisions if outcome == Outcome.GRANTED)
    assert set(granted) == holders
    assert all(count == 1 for count in granted.values())
    assert len(grants) == 100
    for user, outcome, _ in decisions:
        assert outcome in {Outcome.GRANTED, Outcome.ALREADY_ENROLLED, Outcome.NO_SEATS}
        if outcome == Outcome.NO_SEATS:
            assert user not in holders
        else:
            assert user in holders
    assert Counter(outcome for _, outcome, _ in decisions)[Outcome.NO_SEATS] > 0
    store.engine.dispose()


def test_seats_held_never_exceed_what_was_licensed_at_each_grant(store_url: str) -> None:
    keys = [f"AVTR-{number:04d}" for number in range(10)]
    set_up_licenses(store_url, dict.fromkeys(keys, 10))
    answers, changes = race(store_url, remover_keys=keys[:6])

    assert [len(process) for process in answers] == [CLAIMS_PER_PROCESS] * PROCESSES
    store = SqlStore(create_store_engine(store_url))
    with store.reading() as uow:
        events = uow.events.list()
        held = uow.seats.count()
        assert uow.seats.total_rows() == held
    store.engine.dispose()

    # Replay the log in commit order: the licensed seats and seats in use at every instant.
    licensed = used = 0
    grants_between_removals = 0
    removals = 0
    for event in events:
        if event.kind in (EventKind.LICENSE_ADDED, EventKind.LICENSE_REMOVED):
            assert event.seats_total_before == licensed
            licensed = event.seats_total_after
            removals += event.kind is EventKind.LICENSE_REMOVED
        elif event.kind is EventKind.SEAT_GRANTED:
            assert (event.seats_used_before, event.seats_total_after) == (used, licensed)
            used += 1
            assert used <= licensed, f"seat {used} granted with only {licensed} licensed (event {event.id})"
            grants_between_removals += 0 < removals < 6
        elif event.kind is EventKind.SEAT_REFUSED:
            assert event.seats_used_after == used
            assert event.seats_total_after == licensed
    assert removals == 6 and changes == 7
    assert used == held
    assert grants_between_removals > 0, "no claim raced with the removals"
    assert licensed == 50
