"""Seat claims racing for real: many OS processes against one SQLite file or PostgreSQL database."""

from __future__ import annotations

import multiprocessing
import random
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from threading import Barrier, Event

from adapters.sql import SqlStore, create_store_engine
from domain.enrolment import EnrolmentRequest, Outcome
from domain.events import EventKind
from domain.licenses import ServiceAnswer
from domain.ports import Verified
from domain.services.agreement import accept_agreement
from domain.services.enrolment import enrol_editors
from domain.services.licenses import add_license, remove_license
from domain.services.users import remove_user
from domain.usernames import display_username, normalize_username
from tests.fakes import FakeLicenseService

GRACE = timedelta(days=14)
EVERY = timedelta(days=3)
PROCESSES = 8
CLAIMS_PER_PROCESS = 200
EDITORS = 1000


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


def remove_licenses_while_claims_run(url: str, key: str, start: Barrier, done: Event) -> int:
    """Until the claims end: remove a license, take seats from users, add the license back."""
    store = SqlStore(create_store_engine(url))
    store.glance([])
    start.wait()
    cycles = 0
    while not done.is_set() or cycles < 2:
        remove_license(key, "admin", store, now(), GRACE)
        with store.reading() as uow:
            holders = [seat.username for seat in uow.seats.list(limit=15)]
        for username in holders:
            remove_user(username, "admin", store, now(), GRACE)
        time.sleep(0.005)
        add_license(key, "admin", store, service_for(key, 10), now(), GRACE, EVERY)
        time.sleep(0.005)
        cycles += 1
    store.engine.dispose()
    return cycles


def race(url: str, remover_key: str | None = None) -> tuple[list[list[tuple[str, str, str | None]]], int]:
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(PROCESSES + 1, mp_context=context) as pool:
        start = manager.Barrier(PROCESSES + (remover_key is not None))
        done = manager.Event()
        claims = [pool.submit(claim, url, process, start) for process in range(PROCESSES)]
        removal = (
            pool.submit(remove_licenses_while_claims_run, url, remover_key, start, done)
            if remover_key
            else None
        )
        answers = [future.result(timeout=240) for future in claims]
        done.set()
        cycles = removal.result(timeout=240) if removal else 0
    return answers, cycles


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
    answers, cycles = race(store_url, remover_key=keys[0])

    assert [len(process) for process in answers] == [CLAIMS_PER_PROCESS] * PROCESSES
    store = SqlStore(create_store_engine(store_url))
    with store.reading() as uow:
        events = uow.events.list()
        held = uow.seats.count()
        assert uow.seats.total_rows() == held
    store.engine.dispose()

    # Replay the log in commit order: the licensed seats and seats in use at every instant.
    licensed = used = 0
    removals = grants_while_racing = 0
    for event in events:
        if event.kind in (EventKind.LICENSE_ADDED, EventKind.LICENSE_REMOVED):
            assert (event.seats_total_before, event.seats_used_before) == (licensed, used)
            licensed = event.seats_total_after
            removals += event.kind is EventKind.LICENSE_REMOVED
        elif event.kind is EventKind.USER_REMOVED:
            assert (event.seats_used_before, event.seats_used_after) == (used, used - 1)
            used -= 1
        elif event.kind is EventKind.SEAT_GRANTED:
            assert (event.seats_used_before, event.seats_total_after) == (used, licensed)
            used += 1
            assert used <= licensed, f"seat {used} granted with only {licensed} licensed (event {event.id})"
            grants_while_racing += 0 < removals < cycles
        elif event.kind is EventKind.SEAT_REFUSED:
            assert (event.seats_used_after, event.seats_total_after) == (used, licensed)
    assert removals == cycles >= 2
    assert used == held
    assert licensed == 100
    assert grants_while_racing > 0, "no claim raced with the removals"
