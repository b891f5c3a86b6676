"""The rule that decides whether an editor who starts Avtor may use it.

An editor who holds a seat may use Avtor unless more users hold seats than the
licenses grant (then nobody may, until an administrator removes users). An editor
without a seat gets one if a seat is free, and is refused otherwise.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from domain.moments import parse_instant
from domain.usernames import InvalidUsername, display_username, normalize_username

MAX_REQUEST_ID_LENGTH = 200
ENROLMENT_FIELDS = frozenset({"username", "request_id", "occurred_at"})


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
    """A well-formed "editor started" message."""

    username: str
    display_name: str
    request_id: str | None = None
    occurred_at: datetime | None = None


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


def decide(holds_seat: bool, seats_used: int, seats_total: int) -> Outcome:
    """Decide an editor's start from whether they hold a seat and the ledger's counts."""
    if holds_seat:
        return Outcome.ALREADY_ENROLLED if seats_used <= seats_total else Outcome.OVER_LIMIT
    return Outcome.GRANTED if seats_used < seats_total else Outcome.NO_SEATS


def decision_for(
    outcome: Outcome, username: str, seats_used: int, seats_total: int, request_id: str | None
) -> EnrolmentDecision:
    """The decision with the message the editor is shown."""
    return EnrolmentDecision(
        outcome, username, _message(outcome, seats_used, seats_total), seats_total, seats_used, request_id
    )


def _message(outcome: Outcome, used: int, total: int) -> str:
    if outcome is Outcome.GRANTED:
        return f"Seat granted: {used} of {total} seats in use."
    if outcome is Outcome.ALREADY_ENROLLED:
        return f"You hold an Avtor seat: {used} of {total} seats in use."
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


def read_enrolment_request(args: object, kwargs: object) -> EnrolmentRequest:
    """Check an `avtor.enrol` message's arguments; raise InvalidEnrolment saying what is wrong."""
    fields: Mapping[str, Any] = kwargs if isinstance(kwargs, Mapping) else {}
    request_id = _read_request_id(fields.get("request_id"))
    if not isinstance(kwargs, Mapping):
        raise InvalidEnrolment("the arguments must be keyword arguments (username, request_id, occurred_at).")
    if args:
        raise InvalidEnrolment(
            "positional arguments are not accepted: send username (and optionally request_id and "
            "occurred_at) as keyword arguments.",
            request_id,
        )
    unknown = sorted(str(name) for name in fields if name not in ENROLMENT_FIELDS)
    if unknown:
        shown = ", ".join(repr(name[:40]) for name in unknown[:5])
        raise InvalidEnrolment(
            f"unknown argument(s) {shown}: only username, request_id and occurred_at are accepted.",
            request_id,
        )
    if "request_id" in fields and request_id is None:
        raise InvalidEnrolment(
            f"request_id must be a string of 1 to {MAX_REQUEST_ID_LENGTH} printable characters."
        )
    try:
        username = normalize_username(fields.get("username"))
    except InvalidUsername as error:
        raise InvalidEnrolment(str(error), request_id) from None
    return EnrolmentRequest(
        username=username,
        display_name=display_username(fields["username"]),
        request_id=request_id,
        occurred_at=_read_occurred_at(fields.get("occurred_at"), request_id),
    )


def _read_request_id(value: object) -> str | None:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_REQUEST_ID_LENGTH:
        return None
    if any(unicodedata.category(character) in {"Cc", "Cs", "Zl", "Zp"} for character in value):
        return None
    return value


def _read_occurred_at(value: object, request_id: str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str) and len(value) <= 64:
        try:
            return parse_instant(value)
        except ValueError:
            pass
    raise InvalidEnrolment(
        "occurred_at must be an RFC 3339 instant with a time zone, e.g. 2026-11-29T08:00:00Z.", request_id
    )
