"""Reserved users, the over-limit policy and idle-seat reclamation on the real stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adapters.sql import SqlStore, create_store_engine
from domain.enrolment import EnrolmentRequest, Outcome
from domain.licenses import ServiceAnswer
from domain.ports import Verified
from domain.seat_policy import OverLimitPolicy
from domain.services.agreement import accept_agreement
from domain.services.enrolment import enrol_editors
from domain.services.licenses import add_license, remove_license
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
