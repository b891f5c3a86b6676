"""The claim path: the statements of a unit of work that decides a batch of editors' starts.

A batch costs five round trips on PostgreSQL: BEGIN, the locked installation row, one
look-up of the editors' seats and earlier decisions, one statement that writes the new
seats, the audit events and the seat counter together, and COMMIT. SQLite has no round
trips; it runs the writes one table at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    CompoundSelect,
    Connection,
    Executable,
    Insert,
    Label,
    Row,
    Select,
    Table,
    bindparam,
    func,
    insert,
    null,
    select,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from adapters.sql import tables as t
from adapters.sql.rows import event_of, seat_of
from domain.events import AuditEvent
from domain.seats import Seat

Values = dict[str, Any]

_SEAT_COLUMNS = [column.name for column in t.seats.columns]
_EVENT_COLUMNS = [column.name for column in t.audit_events.columns if column.name != "id"]
_SEAT_WIDTH = len(t.seats.columns)


class ClaimStatements:
    """The unit of work's statements for one dialect, built once per store."""

    def __init__(self, dialect: str) -> None:
        self._postgresql = dialect == "postgresql"
        self.installation: Select[Any] = select(
            t.installation.c.installation_id, t.installation.c.seats_in_use, t.installation.c.licenses_version
        ).where(t.installation.c.id == 1)
        # On SQLite a writer holds the database's write lock from BEGIN; FOR UPDATE is PostgreSQL's.
        self.locked_installation = self.installation.with_for_update()
        self.look_up = _look_up(dialect)
        self._writes: dict[tuple[bool, bool, bool, bool], Executable] = {}

    def write(
        self,
        connection: Connection,
        seats: Sequence[Values],
        events: Sequence[Values],
        seats_in_use: int | None = None,
        licenses_changed: bool = False,
    ) -> None:
        """Insert new seats and audit events; set the seat counter (and bump the licenses' version)."""
        count = seats_in_use is not None
        licenses_changed = licenses_changed and count
        if not (seats or events or count):
            return
        if not self._postgresql:
            if seats:
                connection.execute(insert(t.seats), seats)
            if events:
                connection.execute(insert(t.audit_events), events)
            if count:
                connection.execute(_count_seats(licenses_changed), {"seats_in_use": seats_in_use})
            return
        parameters: Values = {"seats_in_use": seats_in_use}
        parameters.update(_columns_of(seats, _SEAT_COLUMNS, "seat_"))
        parameters.update(_columns_of(events, _EVENT_COLUMNS, "event_"))
        statement = self._postgresql_write(bool(seats), bool(events), count, licenses_changed)
        connection.execute(statement, parameters)

    def _postgresql_write(self, seats: bool, events: bool, count: bool, licenses_changed: bool) -> Executable:
        """All the writes as one statement: each insert a data-modifying WITH of the last one."""
        shape = (seats, events, count, licenses_changed)
        statement = self._writes.get(shape)
        if statement is None:
            parts: list[Any] = []
            if seats:
                parts.append(_insert_from_arrays(t.seats, _SEAT_COLUMNS, "seat_"))
            if events:
                parts.append(_insert_from_arrays(t.audit_events, _EVENT_COLUMNS, "event_"))
            if count:
                parts.append(_count_seats(licenses_changed))
            statement = parts.pop()
            for number, part in enumerate(parts):
                statement = statement.add_cte(part.cte(f"written_{number}"))
            self._writes[shape] = statement
        return statement


def found(rows: Iterable[Row[Any]]) -> tuple[dict[str, Seat], dict[str, AuditEvent]]:
    """The seats and the recorded decisions among the look-up's rows."""
    holders: dict[str, Seat] = {}
    recorded: dict[str, AuditEvent] = {}
    for row in rows:
        if row[0] is not None:
            seat = seat_of(row[:_SEAT_WIDTH])
            holders[seat.username] = seat
        else:
            event = event_of(row[_SEAT_WIDTH:])
            recorded[str(event.request_id)] = event
    return holders, recorded


def _look_up(dialect: str) -> CompoundSelect[Any]:
    """Seats of the `usernames` and events of the `request_ids`, in one statement.

    Each row has a seat's columns then an event's; the other table's are NULL.
    """

    def columns(table: Table, present: bool) -> list[Label[Any]]:
        return [
            (column if present else type_coerce(null(), column.type)).label(f"{table.name}_{column.name}")
            for column in table.columns
        ]

    seats = select(*columns(t.seats, True), *columns(t.audit_events, False)).where(
        t.one_of(t.seats.c.username, "usernames", dialect)
    )
    events = select(*columns(t.seats, False), *columns(t.audit_events, True)).where(
        t.one_of(t.audit_events.c.request_id, "request_ids", dialect)
    )
    return union_all(seats, events)


def _count_seats(licenses_changed: bool) -> Executable:
    values: Values = {"seats_in_use": bindparam("seats_in_use")}
    if licenses_changed:
        values["licenses_version"] = t.installation.c.licenses_version + 1
    return update(t.installation).where(t.installation.c.id == 1).values(values)


def _insert_from_arrays(table: Table, columns: list[str], prefix: str) -> Insert:
    """INSERT of rows given as one array a column, in the arrays' order (PostgreSQL's unnest)."""
    arrays = [bindparam(prefix + name, type_=ARRAY(table.c[name].type)) for name in columns]
    rows = func.unnest(*arrays).table_valued(*columns, with_ordinality="position").render_derived()
    return insert(table).from_select(
        columns, select(*(rows.c[name] for name in columns)).order_by(rows.c.position)
    )


def _columns_of(rows: Sequence[Values], columns: list[str], prefix: str) -> Values:
    return {prefix + name: [row[name] for row in rows] for name in columns} if rows else {}
