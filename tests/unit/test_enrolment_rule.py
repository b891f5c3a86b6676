from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.enrolment import (
    MAX_REQUEST_ID_LENGTH,
    InvalidEnrolment,
    Outcome,
    decide,
    decision_for,
    read_enrolment_request,
)


@pytest.mark.parametrize(
    ("holds_seat", "used", "total", "outcome"),
    [
        (False, 10, 25, Outcome.GRANTED),
        (False, 24, 25, Outcome.GRANTED),
        (False, 25, 25, Outcome.NO_SEATS),
        (False, 0, 0, Outcome.NO_SEATS),
        (False, 30, 25, Outcome.NO_SEATS),
        (True, 25, 25, Outcome.ALREADY_ENROLLED),
        (True, 26, 25, Outcome.OVER_LIMIT),
        (True, 1, 0, Outcome.OVER_LIMIT),
    ],
)
def test_decide(holds_seat: bool, used: int, total: int, outcome: Outcome) -> None:
    assert decide(holds_seat, used, total) is outcome


@given(st.booleans(), st.integers(0, 1000), st.integers(0, 1000))
def test_an_editor_is_allowed_only_if_seats_in_use_stay_within_the_licenses(
    holds_seat: bool, used: int, total: int
) -> None:
    outcome = decide(holds_seat, used, total)
    used_after = used + (outcome is Outcome.GRANTED)
    if outcome.allowed:
        assert used_after <= total


def test_the_granted_message_gives_the_counts() -> None:
    decision = decision_for(Outcome.GRANTED, "sitecore\\bob", 11, 25, "r-1")
    assert decision.as_message() == {
        "allowed": True,
        "outcome": "granted",
        "username": "sitecore\\bob",
        "message": "Seat granted: 11 of 25 seats in use.",
        "seats_total": 25,
        "seats_used": 11,
        "request_id": "r-1",
    }


def test_no_seats_tells_the_editor_to_add_licenses_or_remove_users() -> None:
    message = decision_for(Outcome.NO_SEATS, "bob", 25, 25, None).message
    assert "More licenses are needed" in message
    assert "users must be removed" in message


def test_over_limit_says_how_many_users_must_go() -> None:
    message = decision_for(Outcome.OVER_LIMIT, "bob", 27, 25, None).message
    assert "remove 2 users" in message


def test_a_well_formed_request_is_read() -> None:
    request = read_enrolment_request(
        (), {"username": " Sitecore\\Bob ", "request_id": "r-1", "occurred_at": "2026-11-29T08:00:00Z"}
    )
    assert request.username == "sitecore\\bob"
    assert request.display_name == "Sitecore\\Bob"
    assert request.request_id == "r-1"
    assert request.occurred_at is not None and request.occurred_at.isoformat() == "2026-11-29T08:00:00+00:00"


@pytest.mark.parametrize(
    ("args", "kwargs", "reason"),
    [
        ((), {}, "username is missing"),
        ((), {"username": 7}, "int, not a string"),
        ((), {"username": None}, "missing"),
        ((), {"username": "x" * 300}, "300 characters"),
        ((), {"username": "bob\tsmith"}, "control character"),
        ((), {"username": "bob", "admin": True}, "unknown argument"),
        (("bob",), {}, "positional arguments"),
        ((), {"username": "bob", "request_id": 5}, "request_id must be"),
        ((), {"username": "bob", "request_id": ""}, "request_id must be"),
        ((), {"username": "bob", "request_id": "r" * (MAX_REQUEST_ID_LENGTH + 1)}, "request_id must be"),
        ((), {"username": "bob", "occurred_at": "yesterday"}, "occurred_at"),
        ((), {"username": "bob", "occurred_at": "2026-11-29T08:00:00"}, "occurred_at"),
        ((), ["bob"], "keyword arguments"),
        (None, None, "keyword arguments"),
    ],
)
def test_malformed_requests_are_refused_with_the_reason(args: Any, kwargs: Any, reason: str) -> None:
    with pytest.raises(InvalidEnrolment, match=reason) as refused:
        read_enrolment_request(args, kwargs)
    decision = refused.value.decision()
    assert decision.outcome is Outcome.INVALID_REQUEST
    assert not decision.allowed
    assert reason in decision.message


def test_an_invalid_request_still_echoes_a_readable_request_id() -> None:
    with pytest.raises(InvalidEnrolment) as refused:
        read_enrolment_request((), {"username": "", "request_id": "r-9"})
    assert refused.value.decision().request_id == "r-9"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3),
    max_leaves=10,
)


@given(json_values, json_values)
def test_any_json_either_reads_as_a_request_or_is_refused_with_a_message(args: Any, kwargs: Any) -> None:
    try:
        request = read_enrolment_request(args, kwargs)
    except InvalidEnrolment as error:
        assert error.decision().message.startswith("The enrolment request is invalid: ")
    else:
        assert request.username
