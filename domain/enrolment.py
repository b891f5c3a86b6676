"""The rule that decides whether an editor who starts Avtor may use it.

An editor who holds a seat may use Avtor unless more users hold seats than the
licenses grant: then the over-limit policy (`domain.seat_policy`) says who is refused,
everyone (block-all) or the newest seat holders beyond the licensed count
(block-newest). An editor without a seat gets one if a seat is free, and is refused
otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from domain.moments import parse_instant
from domain.seat_policy import OverLimitPolicy, holder_refused
from domain.usernames import InvalidUsername, display_username, normalize_username

MAX_REQUEST_ID_LENGTH = 128
MAX_HOST_LENGTH = 64
# The version of the hosts' enrolment contract this manager speaks (an entry's optional `v`).
CONTRACT_VERSION = "2"


class Outcome(StrEnum):
    """The five answers to an editor's start."""

    GRANTED = "granted"
    ALREADY_ENROLLED = "already_enrolled"
    NO_SEATS = "no_seats"
    OVER_LIMIT = "over_limit"
    INVALID_REQUEST = "invalid_request"

    @property
    def allowed(self) -> bool:
        """Whether the editor may use Avtor."""
        return self in (Outcome.GRANTED, Outcome.ALREADY_ENROLLED)


@dataclass(frozen=True)
class EnrolmentRequest:
    """A well-formed "editor started" entry."""

    username: str
    display_name: str
    request_id: str | None = None
    occurred_at: datetime | None = None
    # The host installation that sent the start, kept in the audit log.
    host: str | None = None


@dataclass(frozen=True)
class EnrolmentDecision:
    """What the host is told: may the editor use Avtor, and a message to show."""

    outcome: Outcome
    username: str | None
    message: str
    seats_total: int | None
    seats_used: int | None
    request_id: str | None

    @property
    def allowed(self) -> bool:
        """Whether the editor may use Avtor."""
        return self.outcome.allowed

    def as_message(self) -> dict[str, Any]:
        """The decision as the JSON object of the enrolment contract."""
        return {
            "allowed": self.allowed,
            "outcome": self.outcome.value,
            "username": self.username,
            "message": self.message,
            "seats_total": self.seats_total,
            "seats_used": self.seats_used,
            "request_id": self.request_id,
        }


class InvalidEnrolment(ValueError):
    """A malformed enrolment message; carries the request id when it was readable."""

    def __init__(self, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id

    def decision(self) -> EnrolmentDecision:
        """The invalid_request decision for this message."""
        return EnrolmentDecision(
            Outcome.INVALID_REQUEST,
            None,
            f"The enrolment request is invalid: {self}",
            None,
            None,
            self.request_id,
        )


def decide(
    holds_seat: bool,
    seats_used: int,
    seats_total: int,
    policy: OverLimitPolicy = OverLimitPolicy.BLOCK_ALL,
    among_newest: bool = False,
) -> Outcome:
    """Decide an editor's start from whether they hold a seat, the ledger's counts and the policy.

    `among_newest`: the holder is one of those block-newest refuses while over the limit.
    """
    if holds_seat:
        refused = holder_refused(policy, seats_used, seats_total, among_newest)
        return Outcome.OVER_LIMIT if refused else Outcome.ALREADY_ENROLLED
    return Outcome.GRANTED if seats_used < seats_total else Outcome.NO_SEATS


def decision_for(
    outcome: Outcome,
    username: str,
    seats_used: int,
    seats_total: int,
    request_id: str | None,
    policy: OverLimitPolicy = OverLimitPolicy.BLOCK_ALL,
) -> EnrolmentDecision:
    """The decision with the message the editor is shown."""
    message = _message(outcome, seats_used, seats_total, policy)
    return EnrolmentDecision(outcome, username, message, seats_total, seats_used, request_id)


def _message(outcome: Outcome, used: int, total: int, policy: OverLimitPolicy) -> str:
    if outcome is Outcome.GRANTED:
        return f"Seat granted: {used} of {total} seats in use."
    if outcome is Outcome.ALREADY_ENROLLED:
        return f"You hold an Avtor seat: {used} of {total} seats in use."
    if outcome is Outcome.OVER_LIMIT and policy is OverLimitPolicy.BLOCK_NEWEST:
        return (
            f"Avtor cannot be used: {used} users hold seats but the licenses grant only {total}, and your "
            "seat is one of the newest beyond them. An administrator must remove users (or add licenses) "
            "in the Avtor License Manager."
        )
    if outcome is Outcome.OVER_LIMIT:
        excess = used - total
        return (
            f"Avtor cannot be used: {used} users hold seats but the licenses grant only {total}. "
            f"An administrator must remove {excess} {'user' if excess == 1 else 'users'} "
            "(or add licenses) in the Avtor License Manager."
        )
    if outcome is Outcome.NO_SEATS:
        if total == 0:
            return (
                "No Avtor licenses are available: add a license or remove a user "
                "in the Avtor License Manager."
            )
        return (
            f"No Avtor seat is free: {used} of {total} seats are in use. More licenses are needed, "
            "or users must be removed in the Avtor License Manager."
        )
    raise ValueError(f"no message for {outcome}")


def read_enrolment_request(fields: Mapping[str, str]) -> EnrolmentRequest:
    """Check the fields of an "editor started" entry; raise InvalidEnrolment saying what is wrong.

    Unknown fields are ignored, as the contract allows hosts to send more.
    """
    request_id = read_request_id(fields.get("request_id"))
    if request_id is None:
        raise InvalidEnrolment(
            f"request_id must be 1 to {MAX_REQUEST_ID_LENGTH} printable ASCII characters (a UUID is right)."
        )
    version = fields.get("v")
    if version is not None and version != CONTRACT_VERSION:
        raise InvalidEnrolment(
            f"this license manager speaks version {CONTRACT_VERSION} of the enrolment contract, "
            f"not {version[:16]!r}: send the entry without v, or with v={CONTRACT_VERSION}.",
            request_id,
        )
    raw_username = fields.get("username")
    try:
        username = normalize_username(raw_username)
    except InvalidUsername as error:
        raise InvalidEnrolment(str(error), request_id) from None
    assert raw_username is not None
    return EnrolmentRequest(
        username=username,
        display_name=display_username(raw_username),
        request_id=request_id,
        occurred_at=_read_occurred_at(fields.get("occurred_at"), request_id),
        host=_read_host(fields.get("host"), request_id),
    )


def read_request_id(value: object) -> str | None:
    """The request id if it is usable (1 to 128 printable ASCII characters), else None."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_REQUEST_ID_LENGTH:
        return None
    if not all(" " <= character <= "~" for character in value):
        return None
    return value


def _read_occurred_at(value: str | None, request_id: str) -> datetime | None:
    if value is None:
        return None
    if len(value) <= 64:
        try:
            return parse_instant(value)
        except ValueError:
            pass
    raise InvalidEnrolment(
        "occurred_at must be an RFC 3339 instant with a time zone, e.g. 2026-11-29T08:00:00Z.", request_id
    )


def _read_host(value: str | None, request_id: str) -> str | None:
    if value is None:
        return None
    if not 0 < len(value) <= MAX_HOST_LENGTH or not value.isprintable():
        raise InvalidEnrolment(
            f"host must be the host installation's name: 1 to {MAX_HOST_LENGTH} printable characters.",
            request_id,
        )
    return value
