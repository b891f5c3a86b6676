"""The seat ledger on SQLAlchemy Core: the store and its units of work."""

from __future__ import annotations

import threading
from collections.abc import Collection
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Connection, CursorResult, Engine, Executable

from adapters.sql.claims import ClaimStatements, Values, found
from adapters.sql.engine import SQLITE_WRITE_OPTION
from adapters.sql.glance import GlanceReader
from adapters.sql.repositories import (
    SqlAgreements,
    SqlAlerts,
    SqlEvents,
    SqlLicenses,
    SqlSeats,
    touch_statement,
)
from domain.events import AuditEvent
from domain.licenses import License
from domain.ports import Glance
from domain.seats import Seat

NO_INSTALLATION = "The store has no installation row: run `avtorlm migrate`."


class SqlStore:
    """The ledger in one database, shared by every worker that points at it.

    Every statement runs on a SQLAlchemy connection of the engine's pool, so a failing
    database raises SQLAlchemy's errors (`sqlalchemy.exc.DBAPIError` and its kinds).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self.claims = ClaimStatements(engine.dialect.name)
        self._glances = GlanceReader(engine)
        self._licenses_cache: tuple[int, tuple[License, ...]] | None = None
        self._cache_lock = threading.Lock()

    def writing(self) -> SqlUnitOfWork:
        """A unit of work that holds the ledger's lock until it ends."""
        return SqlUnitOfWork(self, writing=True)

    def reading(self) -> SqlUnitOfWork:
        """A read-only unit of work on one consistent snapshot."""
        return SqlUnitOfWork(self, writing=False)

    def glance(self, usernames: Collection[str]) -> Glance:
        """Seats in use, licenses and which of `usernames` hold seats, in one statement."""
        seen = self._glances.read(usernames)
        return Glance(seen.seats_in_use, self._licenses_at(seen.licenses_version), seen.holders)

    def touch_seats(self, usernames: Collection[str], seen_at: datetime) -> None:
        """Record "last seen" for seat holders; rows already as recent are left alone."""
        with self.connect(writing=True) as connection, connection.begin():
            connection.execute(touch_statement, {"usernames": list(usernames), "seen_at": seen_at})

    def cached_licenses(self, version: int) -> tuple[License, ...] | None:
        """The licenses as cached at `version` of them, if that is the cached one."""
        cached = self._licenses_cache
        return cached[1] if cached is not None and cached[0] == version else None

    def connect(self, writing: bool) -> Connection:
        """A connection for a writing or a reading unit of work."""
        connection = self.engine.connect()
        if self.is_sqlite:
            if writing:
                connection.execution_options(**{SQLITE_WRITE_OPTION: True})
        elif not writing:
            connection.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        return connection

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


class SqlUnitOfWork:
    """One transaction; a writing one holds the ledger's lock from its first statement.

    New seats and audit events wait in memory and are written with the next statement,
    or with the seat counter at commit: the batch's writes cost one round trip on PostgreSQL.
    """

    def __init__(self, store: SqlStore, writing: bool) -> None:
        self._store = store
        self._writing = writing
        self._connection: Connection | None = None

    def __enter__(self) -> Self:
        claims = self._store.claims
        connection = self._store.connect(self._writing)
        try:
            connection.begin()
            row = connection.execute(
                claims.locked_installation if self._writing else claims.installation
            ).one_or_none()
            if row is None:
                raise LookupError(NO_INSTALLATION)
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        self._installation_id: str = row.installation_id
        self.licenses_version: int = row.licenses_version
        self.seats_in_use: int = row.seats_in_use
        self._seats_written = self.seats_in_use
        self._licenses_changed = False
        self._new_seats: list[Values] = []
        self._new_events: list[Values] = []
        self.licenses = SqlLicenses(self)
        self.seats = SqlSeats(self)
        self.events = SqlEvents(self)
        self.agreements = SqlAgreements(self)
        self.alerts = SqlAlerts(self)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                if connection.in_transaction():
                    connection.rollback()
            finally:
                connection.close()

    @property
    def installation_id(self) -> str:
        """The identity of this installation, sent to the license service."""
        return str(self._installation_id)

    def look_up(
        self, usernames: Collection[str], request_ids: Collection[str]
    ) -> tuple[dict[str, Seat], dict[str, AuditEvent]]:
        """The seats of `usernames` and the decisions recorded for `request_ids`."""
        rows = self.read(self._store.claims.look_up, {"usernames": usernames, "request_ids": request_ids})
        return found(rows)

    def cached_licenses(self) -> tuple[License, ...] | None:
        """The store's cached licenses, if they are the ones this unit of work sees."""
        return None if self._licenses_changed else self._store.cached_licenses(self.licenses_version)

    def read(self, statement: Executable, parameters: Values | None = None) -> CursorResult[Any]:
        """Run a query in this transaction, after the changes waiting to be written."""
        connection = self._open()
        self._write_waiting(connection)
        return connection.execute(statement, parameters)

    def write(self, statement: Executable, parameters: Values | None = None) -> CursorResult[Any]:
        """Run a changing statement; refused in a reading unit of work."""
        self._check_writing()
        return self.read(statement, parameters)

    def add_seats(self, seats: list[Values]) -> None:
        """Rows of new seats, written with the next statement or at commit."""
        self._check_writing()
        self._new_seats.extend(seats)
        self.seats_in_use += len(seats)

    def record_events(self, events: list[Values]) -> None:
        """Rows of new audit events, written with the next statement or at commit."""
        self._check_writing()
        self._new_events.extend(events)

    def licenses_changed(self) -> None:
        """Note that the licenses changed: the commit bumps their version, which empties caches."""
        self._licenses_changed = True

    def commit(self) -> None:
        """Keep every change made in this unit of work."""
        connection = self._open()
        counted = self._licenses_changed or self.seats_in_use != self._seats_written
        self._write_waiting(connection, self.seats_in_use if counted else None)
        connection.commit()
        self._seats_written = self.seats_in_use
        self._licenses_changed = False

    def _write_waiting(self, connection: Connection, seats_in_use: int | None = None) -> None:
        seats, self._new_seats = self._new_seats, []
        events, self._new_events = self._new_events, []
        self._store.claims.write(connection, seats, events, seats_in_use, self._licenses_changed)

    def _check_writing(self) -> None:
        if not self._writing:
            raise RuntimeError("a reading unit of work cannot change the store")

    def _open(self) -> Connection:
        if self._connection is None:
            raise RuntimeError("the unit of work is not open: use it inside `with`")
        return self._connection
