"""Rows of the store's tables to the domain's objects, and back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters.sql import tables as t
from domain.agreement import Acceptance
from domain.events import AuditEvent, EventKind
from domain.licenses import License
from domain.seats import Assignment, Seat

# A row read with `select(table)` holds its table's columns in this order; each domain
# object's fields are named as its table's columns.
LICENSE_COLUMNS = [column.name for column in t.licenses.columns]
SEAT_COLUMNS = [column.name for column in t.seats.columns]
EVENT_COLUMNS = [column.name for column in t.audit_events.columns]
ACCEPTANCE_COLUMNS = [column.name for column in t.agreement_acceptances.columns]


def license_of(row: Sequence[Any]) -> License:
    """A license from its row."""
    return License(**dict(zip(LICENSE_COLUMNS, row, strict=True)))


def license_values(license: License) -> dict[str, Any]:
    """The row of a license."""
    return {name: getattr(license, name) for name in LICENSE_COLUMNS}


def seat_of(row: Sequence[Any]) -> Seat:
    """A seat from its row."""
    values = dict(zip(SEAT_COLUMNS, row, strict=True))
    values["assignment"] = Assignment(values["assignment"])
    return Seat(**values)


def seat_values(seat: Seat) -> dict[str, Any]:
    """The row of a seat; free text is cut to the column's length."""
    return {
        "username": seat.username,
        "display_name": seat.display_name[:256],
        "assignment": seat.assignment.value,
        "assigned_at": seat.assigned_at,
        "assigned_by": seat.assigned_by[:200],
        "last_seen_at": seat.last_seen_at,
        "request_id": seat.request_id,
        "reserved": seat.reserved,
    }


def event_of(row: Sequence[Any]) -> AuditEvent:
    """An audit event from its row."""
    values = dict(zip(EVENT_COLUMNS, row, strict=True))
    values["kind"] = EventKind(values["kind"])
    return AuditEvent(**values)


def event_values(event: AuditEvent) -> dict[str, Any]:
    """The row of a new audit event (the store numbers it); free text is cut to the column's length."""
    return {
        "kind": event.kind.value,
        "at": event.at,
        "actor": event.actor[:200],
        "subject": event.subject[:256],
        "outcome": event.outcome,
        "request_id": event.request_id,
        "seats_total_before": event.seats_total_before,
        "seats_total_after": event.seats_total_after,
        "seats_used_before": event.seats_used_before,
        "seats_used_after": event.seats_used_after,
        "detail": event.detail,
    }


def acceptance_of(row: Sequence[Any]) -> Acceptance:
    """An acceptance of the license agreement from its row."""
    values = dict(zip(ACCEPTANCE_COLUMNS, row, strict=True))
    del values["id"]
    return Acceptance(**values)
