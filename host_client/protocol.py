"""The enrolment contract's wire format (version 2): one stream entry per editor start,
one decision list per request.

Nothing here talks to Redis; `host_client.client` does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TypedDict, cast

# The stream a host appends "editor started" entries to.
REQUESTS_STREAM = "avtor:enrol:requests"
# The list holding the decision of one request: this prefix, then the request id.
DECISION_KEY_PREFIX = "avtor:enrol:decision:"

MAX_REQUEST_ID_LENGTH = 128
MAX_HOST_LENGTH = 64
# An entry larger than this in all (field names and values, UTF-8) is refused by the manager.
MAX_ENTRY_BYTES = 8 * 1024

OUTCOMES = frozenset({"granted", "already_enrolled", "no_seats", "over_limit", "invalid_request"})


class Decision(TypedDict):
    """The manager's decision on one editor start, as the contract defines it."""

    request_id: str
    # The user name as the manager compares it (normalized); None when the request was invalid.
    username: str | None
    allowed: bool
    # One of OUTCOMES.
    outcome: str
    # A sentence for the editor.
    message: str
    seats_total: int | None
    seats_used: int | None
    # RFC 3339, when the manager decided.
    decided_at: str


class MalformedDecision(ValueError):
    """The decision list held something that is not a decision document."""


def decision_key(request_id: str) -> str:
    """The list in which the decision of `request_id` appears."""
    return DECISION_KEY_PREFIX + request_id


def check_request_id(request_id: str) -> str:
    """`request_id` if the manager can answer under it (1 to 128 printable ASCII characters)."""
    if not 0 < len(request_id) <= MAX_REQUEST_ID_LENGTH or not all(" " <= c <= "~" for c in request_id):
        raise ValueError(
            f"request_id must be 1 to {MAX_REQUEST_ID_LENGTH} printable ASCII characters "
            f"(a UUID is right), not {request_id[:40]!r}"
        )
    return request_id


def request_fields(
    username: str,
    request_id: str,
    occurred_at: str | datetime | None = None,
    host: str | None = None,
) -> dict[str, str]:
    """The fields of the stream entry for one editor start, in the contract's order."""
    fields = {"request_id": check_request_id(request_id), "username": username}
    if occurred_at is not None:
        fields["occurred_at"] = rfc3339(occurred_at) if isinstance(occurred_at, datetime) else occurred_at
    if host is not None:
        fields["host"] = host
    size = sum(len(name.encode()) + len(value.encode()) for name, value in fields.items())
    if size > MAX_ENTRY_BYTES:
        raise ValueError(
            f"the entry would be {size} bytes; the manager refuses entries over {MAX_ENTRY_BYTES}"
        )
    return fields


def rfc3339(moment: datetime) -> str:
    """`moment` (which must know its time zone) as RFC 3339 in UTC, e.g. 2026-11-30T09:12:00.041Z."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("occurred_at must know its time zone (e.g. datetime.now(UTC))")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def read_decision(raw: bytes | str) -> Decision:
    """The decision document stored by the manager."""
    try:
        value = json.loads(raw)
    except ValueError as error:
        raise MalformedDecision(f"not JSON: {error}") from None
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("allowed"), bool)
        or not isinstance(value.get("outcome"), str)
        or not isinstance(value.get("request_id"), str)
    ):
        raise MalformedDecision(f"not a decision document: {str(raw)[:200]}")
    return cast(Decision, value)
