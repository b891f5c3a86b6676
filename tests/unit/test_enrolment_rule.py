import re

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
        {
            "username": " Sitecore\\Bob ",
            "request_id": "r-1",
            "occurred_at": "2026-11-29T08:00:00Z",
            "host": "cms-prod-1",
            "v": "2",
            "colour": "ignored",
        }
    )
    assert request.username == "sitecore\\bob"
    assert request.display_name == "Sitecore\\Bob"
    assert request.request_id == "r-1"
    assert request.host == "cms-prod-1"
    assert request.occurred_at is not None and request.occurred_at.isoformat() == "2026-11-29T08:00:00+00:00"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({}, "user name is missing"),
        ({"username": "x" * 300}, "300 characters"),
        ({"username": "bob\tsmith"}, "control character U+0009"),
        ({"username": "carol\u200b"}, "invisible or direction-changing character U+200B"),
        ({"username": "\u202eevil"}, "invisible or direction-changing character U+202E"),
        ({"username": "bob", "occurred_at": "yesterday"}, "occurred_at"),
        ({"username": "bob", "occurred_at": "2026-11-29T08:00:00"}, "occurred_at"),
        ({"username": "bob", "host": "h" * 65}, "host must be"),
        ({"username": "bob", "host": "cms\n1"}, "host must be"),
        ({"username": "bob", "v": "3"}, "version 2 of the enrolment contract"),
    ],
)
def test_malformed_requests_are_refused_with_the_reason(fields: dict[str, str], reason: str) -> None:
    with pytest.raises(InvalidEnrolment, match=re.escape(reason)) as refused:
        read_enrolment_request({"request_id": "r-9", **fields})
    decision = refused.value.decision()
    assert decision.outcome is Outcome.INVALID_REQUEST
    assert not decision.allowed
    assert reason in decision.message
    assert decision.request_id == "r-9"


@pytest.mark.parametrize(
    "request_id", [None, "", "r" * (MAX_REQUEST_ID_LENGTH + 1), "caf\u00e9", "tab\there", "nul\x00"]
)
def test_a_request_without_a_usable_request_id_cannot_be_answered(request_id: str | None) -> None:
    fields = {"username": "bob"} if request_id is None else {"username": "bob", "request_id": request_id}
    with pytest.raises(InvalidEnrolment, match="request_id must be") as refused:
        read_enrolment_request(fields)
    assert refused.value.request_id is None


def test_a_request_id_of_exactly_the_limit_is_accepted() -> None:
    request_id = "r" * MAX_REQUEST_ID_LENGTH
    assert read_enrolment_request({"username": "bob", "request_id": request_id}).request_id == request_id


ENTRY_FIELDS = st.sampled_from(["username", "request_id", "occurred_at", "host", "v", "x"])


@given(st.dictionaries(ENTRY_FIELDS, st.text()))
def test_any_fields_either_read_as_a_request_or_are_refused_with_a_message(fields: dict[str, str]) -> None:
    try:
        request = read_enrolment_request(fields)
    except InvalidEnrolment as error:
        assert error.decision().message.startswith("The enrolment request is invalid: ")
    else:
        assert request.username and request.request_id == fields["request_id"]
