"""The seat ledger on SQLAlchemy Core: units of work and their repositories."""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Connection, Engine, Row, bindparam, create_engine, delete, func, insert, select, update

from adapters.sql import tables as t
from adapters.sql.engine import SQLITE_WRITE_OPTION
from domain.agreement import Acceptance
from domain.events import AuditEvent, EventKind
from domain.licenses import License
from domain.ports import Glance, SeatGlance
from domain.seats import Assignment, Seat

_LICENSE_FIELDS = [column.name for column in t.licenses.columns]

_glance_statement = (
    select(
        t.installation.c.seats_in_use,
        t.installation.c.licenses_version,
        t.seats.c.username,
        t.seats.c.last_seen_at,
        t.seats.c.request_id,
    )
    .select_from(
        t.installation.outerjoin(t.seats, t.seats.c.username.in_(bindparam("usernames", expanding=True)))
    )
    .where(t.installation.c.id == 1)
)

# The statements of the enrolment path, built once: building a statement costs more than
# running a cached one.
_installation_statement = select(t.installation).where(t.installation.c.id == 1)
_locked_installation_statement = _installation_statement.with_for_update()
_holders_statement = select(t.seats).where(t.seats.c.username.in_(bindparam("names", expanding=True)))
_requests_statement = select(t.audit_events).where(
    t.audit_events.c.request_id.in_(bindparam("ids", expanding=True))
)
_insert_seats = insert(t.seats)
_insert_events = insert(t.audit_events)
_count_seats_statement = (
    update(t.installation).where(t.installation.c.id == 1).values(seats_in_use=bindparam("seats_in_use"))
)

_touch_statement = (
    update(t.seats)
    .where(t.seats.c.username.in_(bindparam("usernames", expanding=True)))
    .where((t.seats.c.last_seen_at.is_(None)) | (t.seats.c.last_seen_at < bindparam("seen_at")))
    .values(last_seen_at=bindparam("seen_at"))
)


class SqlStore:
    """The ledger in one database, shared by every worker that points at it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._licenses_cache: tuple[int, tuple[License, ...]] | None = None
        self._cache_lock = threading.Lock()
        # One statement needs no transaction around it: on PostgreSQL, BEGIN and ROLLBACK
        # would be two more round trips on the hottest path. SQLite has no round trips.
        self._single_statements = (
            engine if self.is_sqlite else engine.execution_options(isolation_level="AUTOCOMMIT")
        )

    def writing(self) -> SqlUnitOfWork:
        """A unit of work that holds the ledger's lock until it ends."""
        return SqlUnitOfWork(self, writing=True)

    def reading(self) -> SqlUnitOfWork:
        """A read-only unit of work on one consistent snapshot."""
        return SqlUnitOfWork(self, writing=False)

    def glance(self, usernames: Collection[str]) -> Glance:
        """Seats in use, licenses and which of `usernames` hold seats, in one statement."""
        with self._single_statements.connect() as connection:
            rows = connection.execute(_glance_statement, {"usernames": list(usernames)}).all()
            connection.rollback()
        if not rows:
            raise LookupError("The store has no installation row: run `avtorlm migrate`.")
        seats_in_use, version = rows[0].seats_in_use, rows[0].licenses_version
        holders = {
            row.username: SeatGlance(row.last_seen_at, row.request_id)
            for row in rows
            if row.username is not None
        }
        return Glance(seats_in_use, self._licenses_at(version), holders)

    def touch_seats(self, usernames: Collection[str], seen_at: datetime) -> None:
        """Record "last seen" for seat holders; rows already as recent are left alone."""
        with self._connect(writing=True) as connection, connection.begin():
            connection.execute(_touch_statement, {"usernames": list(usernames), "seen_at": seen_at})

    def _licenses_at(self, version: int) -> tuple[License, ...]:
        """The licenses, read again only when a writer has changed them since."""
        cached = self._licenses_cache
        if cached is not None and cached[0] >= version:
            return cached[1]
        with self.reading() as uow:
            fresh = (uow.licenses_version, tuple(uow.licenses.list()))
        with self._cache_lock:
            if self._licenses_cache is None or self._licenses_cache[0] < fresh[0]:
                self._licenses_cache = fresh
        return fresh[1]

    def _connect(self, writing: bool) -> Connection:
        connection = self.engine.connect()
        if self.is_sqlite:
            if writing:
                connection.execution_options(**{SQLITE_WRITE_OPTION: True})
        elif not writing:
            connection.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        return connection


def _autocommit_engine(engine: Engine) -> Engine:
    """A small second pool on the same database whose connections never open a transaction."""
    return create_engine(
        engine.url, isolation_level="AUTOCOMMIT", pool_size=2, max_overflow=8, pool_recycle=1800
    )


class SqlUnitOfWork:
    """One transaction; a writing one holds the ledger's lock from its first statement."""

    def __init__(self, store: SqlStore, writing: bool) -> None:
        self._store = store
        self._writing = writing
        self._connection: Connection | None = None

    def __enter__(self) -> Self:
        connection = self._store._connect(self._writing)
        try:
            connection.begin()
            locking = self._writing and not self._store.is_sqlite
            row = connection.execute(
                _locked_installation_statement if locking else _installation_statement
            ).one_or_none()
        except BaseException:
            connection.close()
            raise
        if row is None:
            connection.close()
            raise LookupError("The store has no installation row: run `avtorlm migrate`.")
        self._connection = connection
        self._installation_id: str = row.installation_id
        self.licenses_version: int = row.licenses_version
        self._seats_in_use: int = row.seats_in_use
        self._seats_at_start: int = row.seats_in_use
        self._licenses_changed = False
        self.licenses = SqlLicenses(self)
        self.seats = SqlSeats(self)
        self.events = SqlEvents(self)
        self.agreements = SqlAgreements(self)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        connection = self._connection
        self._connection = None
        if connection is not None:
            try:
                if connection.in_transaction():
                    connection.rollback()
            finally:
                connection.close()

    def cached_licenses(self) -> tuple[License, ...] | None:
        """The store's cached licenses, if they are the ones this unit of work sees."""
        cached = self._store._licenses_cache
        if cached is None or self._licenses_changed or cached[0] != self.licenses_version:
            return None
        return cached[1]

    @property
    def installation_id(self) -> str:
        """The identity of this installation, sent to the license service."""
        return str(self._installation_id)

    @property
    def connection(self) -> Connection:
        """The unit of work's connection; only valid inside `with`."""
        if self._connection is None:
            raise RuntimeError("the unit of work is not open: use it inside `with`")
        return self._connection

    def write(self, statement: Any, parameters: Any = None) -> Any:
        """Run a changing statement; refused in a reading unit of work."""
        if not self._writing:
            raise RuntimeError("a reading unit of work cannot change the store")
        return self.connection.execute(statement, parameters)

    def commit(self) -> None:
        """Keep every change made in this unit of work."""
        if self._licenses_changed:
            self.write(
                update(t.installation)
                .where(t.installation.c.id == 1)
                .values(
                    seats_in_use=self._seats_in_use, licenses_version=t.installation.c.licenses_version + 1
                )
            )
        elif self._seats_in_use != self._seats_at_start:
            self.write(_count_seats_statement, {"seats_in_use": self._seats_in_use})
        self.connection.commit()
        self._seats_at_start = self._seats_in_use
        self._licenses_changed = False


class SqlLicenses:
    """The licenses table."""

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    def list(self) -> list[License]:
        # The licenses change rarely and every change bumps the installation's version, so a
        # copy cached at the version this unit of work read is as good as reading the table.
        cached = self._uow.cached_licenses()
        if cached is not None:
            return [license.copy() for license in cached]
        rows = self._uow.connection.execute(
            select(t.licenses).order_by(t.licenses.c.added_at, t.licenses.c.key)
        )
        return [_license(row) for row in rows]

    def get(self, key: str) -> License | None:
        row = self._uow.connection.execute(select(t.licenses).where(t.licenses.c.key == key)).one_or_none()
        return None if row is None else _license(row)

    def add(self, license: License) -> None:
        self._uow.write(insert(t.licenses).values(**_license_values(license)))
        self._uow._licenses_changed = True

    def save(self, license: License) -> None:
        self._uow.write(
            update(t.licenses).where(t.licenses.c.key == license.key).values(**_license_values(license))
        )
        self._uow._licenses_changed = True

    def remove(self, key: str) -> None:
        self._uow.write(delete(t.licenses).where(t.licenses.c.key == key))
        self._uow._licenses_changed = True


class SqlSeats:
    """The seats table, counted by the installation row."""

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    def count(self) -> int:
        return self._uow._seats_in_use

    def holders(self, usernames: Collection[str]) -> dict[str, Seat]:
        if not usernames:
            return {}
        rows = self._uow.connection.execute(_holders_statement, {"names": list(usernames)})
        return {row.username: _seat(row) for row in rows}

    def add(self, seats: Sequence[Seat]) -> None:
        if not seats:
            return
        self._uow.write(_insert_seats, [_seat_values(seat) for seat in seats])
        self._uow._seats_in_use += len(seats)

    def remove(self, username: str) -> None:
        result = self._uow.write(delete(t.seats).where(t.seats.c.username == username))
        self._uow._seats_in_use -= result.rowcount

    def list(self, limit: int | None = None, offset: int = 0) -> list[Seat]:
        statement = select(t.seats).order_by(t.seats.c.assigned_at, t.seats.c.username).offset(offset)
        if limit is not None:
            statement = statement.limit(limit)
        return [_seat(row) for row in self._uow.connection.execute(statement)]

    def total_rows(self) -> int:
        """Count the rows themselves, to check the ledger's counter."""
        count: int = self._uow.connection.execute(select(func.count()).select_from(t.seats)).scalar_one()
        return count


class SqlEvents:
    """The audit log."""

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    def record(self, events: Sequence[AuditEvent]) -> None:
        if events:
            self._uow.write(_insert_events, [_event_values(event) for event in events])

    def for_requests(self, request_ids: Collection[str]) -> dict[str, AuditEvent]:
        if not request_ids:
            return {}
        rows = self._uow.connection.execute(_requests_statement, {"ids": list(request_ids)})
        return {row.request_id: _event(row) for row in rows}

    def list(
        self,
        kinds: Collection[EventKind] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[AuditEvent]:
        statement = select(t.audit_events).order_by(t.audit_events.c.id)
        if kinds:
            statement = statement.where(t.audit_events.c.kind.in_([kind.value for kind in kinds]))
        if since is not None:
            statement = statement.where(t.audit_events.c.at >= since)
        if until is not None:
            statement = statement.where(t.audit_events.c.at < until)
        if limit is not None:
            # The most recent `limit` events, still oldest first.
            statement = statement.order_by(None).order_by(t.audit_events.c.id.desc()).limit(limit)
            return [_event(row) for row in reversed(self._uow.connection.execute(statement).all())]
        return [_event(row) for row in self._uow.connection.execute(statement)]


class SqlAgreements:
    """Acceptances of the license agreement."""

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    def latest(self) -> Acceptance | None:
        statement = select(t.agreement_acceptances).order_by(t.agreement_acceptances.c.id.desc()).limit(1)
        row = self._uow.connection.execute(statement).one_or_none()
        return None if row is None else Acceptance(row.version, row.accepted_by, row.accepted_at)

    def record(self, acceptance: Acceptance) -> None:
        self._uow.write(
            insert(t.agreement_acceptances).values(
                version=acceptance.version,
                accepted_by=acceptance.accepted_by,
                accepted_at=acceptance.accepted_at,
            )
        )


def _license(row: Row[Any]) -> License:
    return License(**{name: getattr(row, name) for name in _LICENSE_FIELDS})


def _license_values(license: License) -> dict[str, Any]:
    return {name: getattr(license, name) for name in _LICENSE_FIELDS}


def _seat(row: Row[Any]) -> Seat:
    return Seat(
        username=row.username,
        display_name=row.display_name,
        assignment=Assignment(row.assignment),
        assigned_at=row.assigned_at,
        assigned_by=row.assigned_by,
        last_seen_at=row.last_seen_at,
        request_id=row.request_id,
    )


def _seat_values(seat: Seat) -> dict[str, Any]:
    return {
        "username": seat.username,
        "display_name": seat.display_name[:256],
        "assignment": seat.assignment.value,
        "assigned_at": seat.assigned_at,
        "assigned_by": seat.assigned_by[:200],
        "last_seen_at": seat.last_seen_at,
        "request_id": seat.request_id,
    }


def _event(row: Row[Any]) -> AuditEvent:
    return AuditEvent(
        kind=EventKind(row.kind),
        at=row.at,
        actor=row.actor,
        subject=row.subject,
        seats_total_before=row.seats_total_before,
        seats_total_after=row.seats_total_after,
        seats_used_before=row.seats_used_before,
        seats_used_after=row.seats_used_after,
        outcome=row.outcome,
        request_id=row.request_id,
        detail=row.detail,
        id=row.id,
    )


def _event_values(event: AuditEvent) -> dict[str, Any]:
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
