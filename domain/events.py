"""The audit log: what changed the seat ledger, who did it, when, and the counts around it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class EventKind(StrEnum):
    """What happened."""

    AGREEMENT_ACCEPTED = "agreement_accepted"
    LICENSE_ADDED = "license_added"
    LICENSE_REFRESHED = "license_refreshed"
    LICENSE_REMOVED = "license_removed"
    USER_ADDED = "user_added"
    USER_REMOVED = "user_removed"
    SEAT_GRANTED = "seat_granted"
    SEAT_REFUSED = "seat_refused"
    USER_RESERVED = "user_reserved"
    USER_UNRESERVED = "user_unreserved"
    SEAT_RECLAIMED = "seat_reclaimed"


# The actor of automatic enrolments: the CMS, on an editor's first start.
EDITOR_START = "editor-start"


@dataclass(frozen=True)
class AuditEvent:
    """One entry of the audit log."""

    kind: EventKind
    at: datetime
    actor: str
    subject: str
    seats_total_before: int
    seats_total_after: int
    seats_used_before: int
    seats_used_after: int
    outcome: str | None = None
    request_id: str | None = None
    detail: str = ""
    id: int | None = None


@dataclass(frozen=True)
class EventTally:
    """Events of one kind about one subject with one outcome, counted instead of listed."""

    kind: EventKind
    subject: str
    outcome: str | None
    count: int
    first_at: datetime
    last_at: datetime
