"""Reserved users, the over-limit policy and idle-seat reclamation on the real stores."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from threading import Barrier, Event, Lock
from typing import Self

from adapters.sql import SqlStore, create_store_engine
from adapters.sql.store import SqlUnitOfWork
from domain.enrolment import EnrolmentRequest, Outcome
from domain.licenses import ServiceAnswer
from domain.ports import Verified
from domain.seat_policy import OverLimitPolicy
from domain.services.agreement import accept_agreement
from domain.services.enrolment import enrol_editors
from domain.services.licenses import add_license, remove_license
from domain.services.reclamation import reclaim_idle_seats
from domain.services.users import add_user, list_users, reserve_user, unreserve_user
from tests.fakes import FakeLicenseService

GRACE = timedelta(days=14)
EVERY = timedelta(days=3)


def now() -> datetime:
    return datetime.now(UTC)


def licensed(url: str, **licenses: int) -> SqlStore:
    store = SqlStore(create_store_engine(url))
    accept_agreement("admin", store, now(), GRACE)
    for key, seats in licenses.items():
        answer = ServiceAnswer(key, "active", seats, now() + timedelta(days=365), now(), "Example Corp")
        add_license(key, "admin", store, FakeLicenseService({key: Verified(answer)}), now(), GRACE, EVERY)
    return store


def start(store: SqlStore, policy: OverLimitPolicy, *names: str) -> dict[str, Outcome]:
    requests = [EnrolmentRequest(name, name) for name in names]
    return {
        str(decision.username): decision.outcome
        for decision in enrol_editors(requests, store, now(), GRACE, policy)
    }


def test_a_reserved_seat_is_stored_listed_and_released(store_url: str) -> None:
    store = licensed(store_url, AVTR_A=3)
    add_user("ann", "ada", store, now(), GRACE, reserved=True)
    reserve_user("bob", "ada", store, now(), GRACE)
    add_user("cid", "ada", store, now(), GRACE)
    unreserve_user("bob", "ada", store, now(), GRACE)
    assert {seat.username: seat.reserved for seat in list_users(store).seats} == {
        "ann": True,
        "bob": False,
        "cid": False,
    }
    store.engine.dispose()


def test_over_the_limit_block_newest_refuses_the_newest_holders_but_never_reserved_ones(
    store_url: str,
) -> None:
    store = licensed(store_url, AVTR_A=2, AVTR_B=2)
    assert start(store, OverLimitPolicy.BLOCK_ALL, "ann", "bob") == {
        "ann": Outcome.GRANTED,
        "bob": Outcome.GRANTED,
    }
    assert start(store, OverLimitPolicy.BLOCK_ALL, "cid") == {"cid": Outcome.GRANTED}
    reserve_user("dan", "ada", store, now(), GRACE)
    remove_license("AVTR_B", "admin", store, now(), GRACE)
    everyone = ("ann", "bob", "cid", "dan", "eve")
    assert start(store, OverLimitPolicy.BLOCK_NEWEST, *everyone) == {
        "ann": Outcome.ALREADY_ENROLLED,
        "bob": Outcome.OVER_LIMIT,
        "cid": Outcome.OVER_LIMIT,
        "dan": Outcome.ALREADY_ENROLLED,
        "eve": Outcome.NO_SEATS,
    }
    assert set(start(store, OverLimitPolicy.BLOCK_ALL, *everyone).values()) == {
        Outcome.OVER_LIMIT,
        Outcome.NO_SEATS,
    }
    store.engine.dispose()


# --- idle-seat reclamation against concurrent starts -------------------------------------------------

IDLE = timedelta(days=90)


class PausingStore(SqlStore):
    """A real store whose first writing unit of work stops, holding the ledger's lock, until let go."""

    def __init__(self, url: str) -> None:
        super().__init__(create_store_engine(url))
        self.locked, self.go = Event(), Event()
        self._paused = False
        self._guard = Lock()

    def writing(self) -> SqlUnitOfWork:
        with self._guard:
            first, self._paused = not self._paused, True
        return _PausingUnitOfWork(self, self.locked, self.go) if first else super().writing()


class _PausingUnitOfWork(SqlUnitOfWork):
    def __init__(self, store: SqlStore, locked: Event, go: Event) -> None:
        super().__init__(store, writing=True)
        self._locked, self._go = locked, go

    def __enter__(self) -> Self:
        entered = super().__enter__()
        self._locked.set()
        assert self._go.wait(30)
        return entered


def idle_holders(url: str, names: list[str], licensed_seats: int) -> SqlStore:
    """A store with `licensed_seats` seats and `names` holding seats, last seen 100 days ago."""
    store = licensed(url, AVTR_A=licensed_seats)
    for name in names:
        add_user(name, "ada", store, now() - timedelta(days=200), GRACE)
    store.touch_seats(names, now() - timedelta(days=100))
    return store


def holders(store: SqlStore) -> set[str]:
    return {seat.username for seat in list_users(store).seats}


def test_a_start_while_reclamation_holds_the_lock_waits_and_then_goes_through_the_gate(
    store_url: str,
) -> None:
    idle_holders(store_url, ["ann", "bob"], 2).engine.dispose()
    store = PausingStore(store_url)
    with ThreadPoolExecutor(2) as pool:
        reclaiming = pool.submit(reclaim_idle_seats, store, now(), IDLE, GRACE)
        assert store.locked.wait(10)
        starting = pool.submit(start_with_reclamation, store, "ann")
        time.sleep(0.5)
        assert not starting.done(), "the start must wait for the ledger's lock"
        store.go.set()
        reclaimed, _ = reclaiming.result(30)
        outcome = starting.result(30)
    assert {r.username for r in reclaimed} == {"ann", "bob"}
    assert outcome == Outcome.GRANTED  # decided after the reclamation: a new seat, as a new editor
    assert holders(store) == {"ann"}
    store.engine.dispose()


def test_a_start_that_holds_the_lock_first_keeps_its_seat_from_the_reclamation(store_url: str) -> None:
    idle_holders(store_url, ["ann", "bob"], 2).engine.dispose()
    store = PausingStore(store_url)
    with ThreadPoolExecutor(2) as pool:
        starting = pool.submit(start_with_reclamation, store, "ann")
        assert store.locked.wait(10)
        reclaiming = pool.submit(reclaim_idle_seats, store, now(), IDLE, GRACE)
        time.sleep(0.5)
        assert not reclaiming.done(), "the reclamation must wait for the ledger's lock"
        store.go.set()
        outcome = starting.result(30)
        reclaimed, _ = reclaiming.result(30)
    assert outcome == Outcome.ALREADY_ENROLLED
    assert [r.username for r in reclaimed] == ["bob"]
    assert holders(store) == {"ann"}
    store.engine.dispose()


def start_with_reclamation(store: SqlStore, *names: str) -> Outcome:
    requests = [EnrolmentRequest(name, name) for name in names]
    decisions = enrol_editors(requests, store, now(), GRACE, reclaim_idle_after=IDLE)
    return decisions[-1].outcome


def test_reclamation_racing_many_starts_never_over_grants_and_never_takes_a_seat_just_let_in(
    store_url: str,
) -> None:
    idle = [f"idle{number:02d}" for number in range(30)]
    new = [f"new{number:02d}" for number in range(20)]
    idle_holders(store_url, idle, 30).engine.dispose()
    store = SqlStore(create_store_engine(store_url))
    editors = idle + new
    random.Random(7).shuffle(editors)
    barrier = Barrier(6)
    allowed: dict[str, list[Outcome]] = {}
    guard = Lock()

    def starts(part: list[str]) -> None:
        barrier.wait()
        for offset in range(0, len(part), 3):
            batch = [EnrolmentRequest(name, name) for name in part[offset : offset + 3]]
            for decision in enrol_editors(batch, store, now(), GRACE, reclaim_idle_after=IDLE):
                with guard:
                    allowed.setdefault(str(decision.username), []).append(decision.outcome)

    def reclaim() -> list[str]:
        barrier.wait()
        time.sleep(random.Random(3).uniform(0, 0.05))
        return [r.username for r in reclaim_idle_seats(store, now(), IDLE, GRACE)[0]]

    with ThreadPoolExecutor(6) as pool:
        reclaiming = pool.submit(reclaim)
        parts = [pool.submit(starts, editors[n::5]) for n in range(5)]
        for part in parts:
            part.result(60)
        reclaimed = reclaiming.result(60)
    held = holders(store)
    with store.reading() as uow:
        counted, rows = uow.seats.count(), uow.seats.total_rows()
    assert counted == rows == len(held) <= 30
    for name, outcomes in allowed.items():
        if outcomes[-1].allowed:
            assert name in held, f"{name} was let in but lost the seat (reclaimed: {name in reclaimed})"
    assert set(reclaimed) <= set(idle)
    for name in idle:
        outcome = allowed[name][-1]
        # Let in as a holder: decided before the reclamation, which then found the editor seen.
        # Granted or refused a seat: decided after it, as a new editor.
        assert (name in reclaimed) == (outcome is not Outcome.ALREADY_ENROLLED), (name, outcome)
    store.engine.dispose()
