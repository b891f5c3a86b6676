"""The over-limit policy: who may use Avtor when more users hold seats than licensed."""

from datetime import UTC, datetime, timedelta

import pytest

from domain.enrolment import EnrolmentRequest, Outcome, decide
from domain.licenses import ServiceAnswer
from domain.ports import Verified
from domain.seat_policy import OverLimitPolicy, refused_holders
from domain.seats import Assignment, Seat
from domain.services.agreement import accept_agreement
from domain.services.enrolment import enrol_editors
from domain.services.licenses import add_license
from domain.services.status import describe_ledger
from tests.fakes import FakeLicenseService, FakeStore

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
GRACE = timedelta(days=14)
BLOCK_ALL = OverLimitPolicy.BLOCK_ALL
BLOCK_NEWEST = OverLimitPolicy.BLOCK_NEWEST
POLICIES = [BLOCK_ALL, BLOCK_NEWEST]
# seats used against 10 licensed
UNDER, AT, OVER = 9, 10, 12


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("among_newest", [False, True])
@pytest.mark.parametrize(
    ("used", "expected"), [(UNDER, Outcome.GRANTED), (AT, Outcome.NO_SEATS), (OVER, Outcome.NO_SEATS)]
)
def test_a_new_editor_gets_a_seat_only_while_one_is_free_whatever_the_policy(
    policy: OverLimitPolicy, among_newest: bool, used: int, expected: Outcome
) -> None:
    assert decide(False, used, 10, policy, among_newest) is expected


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("among_newest", [False, True])
@pytest.mark.parametrize("used", [UNDER, AT])
def test_a_holder_may_use_avtor_up_to_the_limit_whatever_the_policy(
    policy: OverLimitPolicy, among_newest: bool, used: int
) -> None:
    assert decide(True, used, 10, policy, among_newest) is Outcome.ALREADY_ENROLLED


@pytest.mark.parametrize("among_newest", [False, True])
def test_over_the_limit_block_all_refuses_every_holder(among_newest: bool) -> None:
    assert decide(True, OVER, 10, BLOCK_ALL, among_newest) is Outcome.OVER_LIMIT


@pytest.mark.parametrize(
    ("among_newest", "expected"), [(False, Outcome.ALREADY_ENROLLED), (True, Outcome.OVER_LIMIT)]
)
def test_over_the_limit_block_newest_refuses_only_the_newest_holders(
    among_newest: bool, expected: Outcome
) -> None:
    assert decide(True, OVER, 10, BLOCK_NEWEST, among_newest) is expected


def test_the_default_policy_is_block_all() -> None:
    assert decide(True, OVER, 10) is Outcome.OVER_LIMIT


def seat(name: str, minutes: int, reserved: bool = False) -> Seat:
    return Seat(
        name,
        name,
        Assignment.AUTOMATIC,
        NOW + timedelta(minutes=minutes),
        "editor-start",
        None,
        None,
        reserved,
    )


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("licensed", [3, 4])
def test_nobody_is_refused_under_or_at_the_limit(policy: OverLimitPolicy, licensed: int) -> None:
    holders = [seat("ann", 1), seat("bob", 2), seat("cid", 3)]
    assert refused_holders(policy, holders, licensed) == []


def test_over_the_limit_block_all_refuses_every_holder_reserved_or_not() -> None:
    holders = [seat("ann", 1), seat("bob", 2, reserved=True), seat("cid", 3)]
    assert {s.username for s in refused_holders(BLOCK_ALL, holders, 2)} == {"ann", "bob", "cid"}


def test_over_the_limit_block_newest_refuses_the_holders_who_took_a_seat_last() -> None:
    holders = [seat("dan", 4), seat("ann", 1), seat("cid", 3), seat("bob", 2)]
    assert [s.username for s in refused_holders(BLOCK_NEWEST, holders, 2)] == ["cid", "dan"]


def test_block_newest_never_refuses_a_reserved_user_and_refuses_the_newest_unreserved_instead() -> None:
    holders = [seat("ann", 1), seat("bob", 2), seat("cid", 3), seat("dan", 4, reserved=True)]
    assert [s.username for s in refused_holders(BLOCK_NEWEST, holders, 2)] == ["bob", "cid"]


def test_block_newest_with_more_reserved_users_than_licensed_refuses_every_unreserved_one() -> None:
    holders = [seat("ann", 1), seat("bob", 2, reserved=True), seat("cid", 3, reserved=True)]
    assert [s.username for s in refused_holders(BLOCK_NEWEST, holders, 1)] == ["ann"]


def over_limit_store(*holders: Seat, licensed: int = 2) -> FakeStore:
    store = FakeStore()
    accept_agreement("admin", store, NOW, GRACE)
    key = "AVTR-0001"
    service = FakeLicenseService(
        {key: Verified(ServiceAnswer(key, "active", licensed, NOW + timedelta(days=365), NOW))}
    )
    add_license(key, "admin", store, service, NOW, GRACE, timedelta(days=3))
    for holder in holders:
        store.ledger.seats[holder.username] = holder
    return store


def starts(store: FakeStore, policy: OverLimitPolicy, *names: str) -> dict[str, Outcome]:
    requests = [EnrolmentRequest(name, name) for name in names]
    return {
        decision.username or "": decision.outcome
        for decision in enrol_editors(requests, store, NOW + timedelta(hours=1), GRACE, policy)
    }


def test_an_over_limit_ledger_under_block_all_refuses_every_start() -> None:
    store = over_limit_store(seat("ann", 1), seat("bob", 2), seat("cid", 3, reserved=True))
    assert starts(store, BLOCK_ALL, "ann", "bob", "cid", "new") == {
        "ann": Outcome.OVER_LIMIT,
        "bob": Outcome.OVER_LIMIT,
        "cid": Outcome.OVER_LIMIT,
        "new": Outcome.NO_SEATS,
    }


def test_an_over_limit_ledger_under_block_newest_lets_the_oldest_and_the_reserved_in() -> None:
    store = over_limit_store(seat("ann", 1), seat("bob", 2), seat("cid", 3), seat("dan", 4, reserved=True))
    assert starts(store, BLOCK_NEWEST, "ann", "bob", "cid", "dan", "new") == {
        "ann": Outcome.ALREADY_ENROLLED,
        "bob": Outcome.OVER_LIMIT,
        "cid": Outcome.OVER_LIMIT,
        "dan": Outcome.ALREADY_ENROLLED,
        "new": Outcome.NO_SEATS,
    }
    assert len(store.ledger.seats) == 4


def test_a_refused_newest_holder_is_told_why() -> None:
    store = over_limit_store(seat("ann", 1), seat("bob", 2), seat("cid", 3))
    (decision,) = enrol_editors([EnrolmentRequest("cid", "cid")], store, NOW, GRACE, BLOCK_NEWEST)
    assert not decision.allowed
    assert "one of the newest" in decision.message


def test_the_status_names_the_policy_and_under_block_newest_who_is_refused() -> None:
    store = over_limit_store(seat("ann", 1), seat("bob", 2), seat("cid", 3))
    status = describe_ledger(store, NOW, GRACE, BLOCK_NEWEST)
    assert status.policy is BLOCK_NEWEST
    assert [s.username for s in status.refused] == ["cid"]
    assert describe_ledger(store, NOW, GRACE).refused == []


def test_the_status_document_and_the_console_say_the_policy_and_who_is_refused() -> None:
    from cli.status import status_document
    from web.views import status_document as console_document

    store = over_limit_store(seat("ann", 1), seat("bob", 2), seat("cid", 3))
    status = describe_ledger(store, NOW, GRACE, BLOCK_NEWEST)
    for document in (status_document(status, show_keys=False), console_document(status)):
        assert document["over_limit_policy"] == "block-newest"
        assert document["refused"] == ["cid"]
        assert "newest" in document["advice"]
