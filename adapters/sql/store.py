"""The seat ledger on SQLAlchemy Core: units of work and their repositories."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Connection, Engine, Row, bindparam, delete, func, insert, select, update

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


class _DriverSql:
    """The enrolment path's statements as plain SQL for the driver, per dialect.

    These run for every editor's start; SQLAlchemy's work around an execution costs
    several times what SQLite or PostgreSQL spend on these statements, so they go
    straight to the driver connection, inside the unit of work's transaction.
    """

    SEAT_COLUMNS = "username, display_name, assignment, assigned_at, assigned_by, last_seen_at, request_id"
    EVENT_COLUMNS = (
        "kind, at, actor, subject, outcome, request_id, seats_total_before, seats_total_after, "
        "seats_used_before, seats_used_after, detail"
    )

    def __init__(self, sqlite: bool) -> None:
        self.sqlite = sqlite
        mark = "?" if sqlite else "%s"
        names = f"IN (SELECT value FROM json_each({mark}))" if sqlite else f"= ANY({mark})"
        self.installation = (
            "SELECT installation_id, seats_in_use, licenses_version FROM installation WHERE id = 1"
        )
        self.locked_installation = self.installation + ("" if sqlite else " FOR UPDATE")
        self.holders = f"SELECT {self.SEAT_COLUMNS} FROM seats WHERE username {names}"
        self.requests = f"SELECT {self.EVENT_COLUMNS}, id FROM audit_events WHERE request_id {names}"
        self.insert_seat = f"INSERT INTO seats ({self.SEAT_COLUMNS}) VALUES ({', '.join([mark] * 7)})"
        self.insert_event = (
            f"INSERT INTO audit_events ({self.EVENT_COLUMNS}) VALUES ({', '.join([mark] * 11)})"
        )
        self.count_seats = f"UPDATE installation SET seats_in_use = {mark} WHERE id = 1"
        self.glance = (
            "SELECT i.seats_in_use, i.licenses_version, s.username, s.last_seen_at, s.request_id "
            f"FROM installation AS i LEFT OUTER JOIN seats AS s ON s.username {names} WHERE i.id = 1"
        )

    def names(self, values: Collection[str]) -> Any:
        """A list of names as the one parameter the dialect's statements take."""
        return json.dumps(list(values)) if self.sqlite else list(values)

    def instant(self, moment: datetime | None) -> Any:
        """An instant as the column keeps it (SQLite: UTC text, as SQLAlchemy writes it)."""
        if moment is None or not self.sqlite:
            return moment
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


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
        self.sql = _DriverSql(self.is_sqlite)
        self._glances = _GlanceConnection(engine, self.sql)

    def writing(self) -> SqlUnitOfWork:
        """A unit of work that holds the ledger's lock until it ends."""
        return SqlUnitOfWork(self, writing=True)

    def reading(self) -> SqlUnitOfWork:
        """A read-only unit of work on one consistent snapshot."""
        return SqlUnitOfWork(self, writing=False)

    def glance(self, usernames: Collection[str]) -> Glance:
        """Seats in use, licenses and which of `usernames` hold seats, in one statement."""
        try:
            rows = self._glances.run(usernames)
        except self._glances.errors:
            # A broken connection is dropped; the ordinary path reconnects, or raises the
            # store error that makes the task try again.
            self._glances.forget()
            with self.engine.connect() as connection:
                rows = [
                    tuple(row)
                    for row in connection.execute(_glance_statement, {"usernames": list(usernames)})
                ]
        if not rows:
            raise LookupError("The store has no installation row: run `avtorlm migrate`.")
        seats_in_use, version = rows[0][0], rows[0][1]
        holders = {
            username: SeatGlance(_utc(last_seen_at), request_id)
            for _, _, username, last_seen_at, request_id in rows
            if username is not None
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


class _GlanceConnection:
    """The glance on a driver connection of the process's own, outside the pool.

    It is the most frequent statement of all (every editor's start). The connection is
    in autocommit: one statement is its own consistent snapshot, and on PostgreSQL
    BEGIN and ROLLBACK would be two more round trips. One connection serves the whole
    process, one glance at a time, so a worker never holds more database connections
    because it runs more threads (on SQLite a connection per thread also cost more CPU
    under contention: about 90 against 54 microseconds a glance with 24 threads).
    """

    def __init__(self, engine: Engine, sql: _DriverSql) -> None:
        self._engine = engine
        self._sql = sql
        self.errors: tuple[type[BaseException], ...] = (engine.dialect.loaded_dbapi.Error,)
        self._lock = threading.Lock()
        self._connection: Any = None

    def run(self, usernames: Collection[str]) -> list[tuple[Any, ...]]:
        parameter = self._sql.names(usernames)
        with self._lock:
            if self._connection is None:
                self._connection = self._connect()
            cursor = self._connection.cursor()
            try:
                cursor.execute(self._sql.glance, (parameter,))
                return [tuple(row) for row in cursor.fetchall()]
            finally:
                cursor.close()

    def _connect(self) -> Any:
        proxied = self._engine.raw_connection()
        proxied.detach()  # the process's own, never handed back to the pool
        connection = proxied.dbapi_connection
        if not self._sql.sqlite:
            connection.autocommit = True  # type: ignore[union-attr]
        return connection

    def forget(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()


def _utc(moment: Any) -> datetime | None:
    """A timestamp as the driver returns it (SQLite: text without zone), as a UTC instant."""
    if moment is None:
        return None
    instant: datetime = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)


class SqlUnitOfWork:
    """One transaction; a writing one holds the ledger's lock from its first statement."""

    def __init__(self, store: SqlStore, writing: bool) -> None:
        self._store = store
        self._writing = writing
        self._connection: Connection | None = None

    def __enter__(self) -> Self:
        connection = self._store._connect(self._writing)
        self._connection = connection
        self._pending: list[tuple[str, Sequence[Sequence[Any]]]] = []
        sql = self._store.sql
        try:
            connection.begin()
            rows = self.driver_rows(sql.locked_installation if self._writing else sql.installation)
        except BaseException:
            self._connection = None
            connection.close()
            raise
        if not rows:
            self._connection = None
            connection.close()
            raise LookupError("The store has no installation row: run `avtorlm migrate`.")
        installation_id, seats_in_use, licenses_version = rows[0]
        self._installation_id: str = installation_id
        self.licenses_version: int = licenses_version
        self._seats_in_use: int = seats_in_use
        self._seats_at_start: int = seats_in_use
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

    def look_up(
        self, usernames: Collection[str], request_ids: Collection[str]
    ) -> tuple[dict[str, Seat], dict[str, AuditEvent]]:
        """The seats of `usernames` and the decisions recorded for `request_ids`, read together."""
        sql = self._store.sql
        queries = [(sql.holders, (sql.names(usernames),))]
        if request_ids:
            queries.append((sql.requests, (sql.names(request_ids),)))
        results = self.driver_queries(queries)
        holders = {row[0]: _seat_of_columns(*row) for row in results[0]}
        recorded = {row[5]: _event_of_columns(*row) for row in results[1]} if request_ids else {}
        return holders, recorded

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

    def driver_rows(self, sql: str, *parameters: Any) -> list[tuple[Any, ...]]:
        """Rows of a plain SQL query on the driver connection, in this transaction."""
        [rows] = self.driver_queries([(sql, parameters)])
        return rows

    def driver_queries(self, queries: Sequence[tuple[str, Sequence[Any]]]) -> list[list[tuple[Any, ...]]]:
        """Rows of several plain SQL queries, sent together (one round trip on PostgreSQL)."""
        driver = self._driver()
        cursors = [driver.cursor() for _ in queries]
        try:
            with self._together(driver):
                self._flush(driver)
                for cursor, (sql, parameters) in zip(cursors, queries, strict=True):
                    cursor.execute(sql, parameters)
            return [[tuple(row) for row in cursor.fetchall()] for cursor in cursors]
        finally:
            for cursor in cursors:
                cursor.close()

    def driver_write(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """A plain SQL change, once per row, sent with the next query or with the commit."""
        if not self._writing:
            raise RuntimeError("a reading unit of work cannot change the store")
        self._pending.append((sql, rows))

    def _flush(self, driver: Any) -> None:
        pending, self._pending = self._pending, []
        if pending:
            cursor = driver.cursor()
            try:
                for sql, rows in pending:
                    cursor.executemany(sql, rows)
            finally:
                cursor.close()

    def _driver(self) -> Any:
        return self.connection.connection.driver_connection

    def _together(self, driver: Any) -> Any:
        """Send what follows in one go: psycopg's pipeline on PostgreSQL; SQLite has no round trips."""
        return contextlib.nullcontext() if self._store.is_sqlite else driver.pipeline()

    def write(self, statement: Any, parameters: Any = None) -> Any:
        """Run a changing statement; refused in a reading unit of work."""
        if not self._writing:
            raise RuntimeError("a reading unit of work cannot change the store")
        self._flush(self._driver())
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
            self.driver_write(self._store.sql.count_seats, [(self._seats_in_use,)])
        driver = self._driver()
        with self._together(driver):
            self._flush(driver)
            if not self._store.is_sqlite:
                # The writes and the COMMIT leave in one round trip; SQLAlchemy's commit
                # below then finds nothing left to commit.
                driver.commit()
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
        sql = self._uow._store.sql
        rows = self._uow.driver_rows(sql.holders, sql.names(usernames))
        return {row[0]: _seat_of_columns(*row) for row in rows}

    def add(self, seats: Sequence[Seat]) -> None:
        if not seats:
            return
        sql = self._uow._store.sql
        self._uow.driver_write(
            sql.insert_seat,
            [
                (
                    seat.username,
                    seat.display_name[:256],
                    seat.assignment.value,
                    sql.instant(seat.assigned_at),
                    seat.assigned_by[:200],
                    sql.instant(seat.last_seen_at),
                    seat.request_id,
                )
                for seat in seats
            ],
        )
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
            sql = self._uow._store.sql
            self._uow.driver_write(
                sql.insert_event,
                [
                    (
                        event.kind.value,
                        sql.instant(event.at),
                        event.actor[:200],
                        event.subject[:256],
                        event.outcome,
                        event.request_id,
                        event.seats_total_before,
                        event.seats_total_after,
                        event.seats_used_before,
                        event.seats_used_after,
                        event.detail,
                    )
                    for event in events
                ],
            )

    def for_requests(self, request_ids: Collection[str]) -> dict[str, AuditEvent]:
        if not request_ids:
            return {}
        sql = self._uow._store.sql
        rows = self._uow.driver_rows(sql.requests, sql.names(request_ids))
        return {row[5]: _event_of_columns(*row) for row in rows}

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


def _seat_of_columns(
    username: str,
    display_name: str,
    assignment: str,
    assigned_at: Any,
    assigned_by: str,
    last_seen_at: Any,
    request_id: str | None,
) -> Seat:
    at = _utc(assigned_at)
    assert at is not None
    return Seat(
        username, display_name, Assignment(assignment), at, assigned_by, _utc(last_seen_at), request_id
    )


def _event_of_columns(
    kind: str,
    at: Any,
    actor: str,
    subject: str,
    outcome: str | None,
    request_id: str | None,
    seats_total_before: int,
    seats_total_after: int,
    seats_used_before: int,
    seats_used_after: int,
    detail: str,
    id: int,
) -> AuditEvent:
    moment = _utc(at)
    assert moment is not None
    return AuditEvent(
        EventKind(kind),
        moment,
        actor,
        subject,
        seats_total_before,
        seats_total_after,
        seats_used_before,
        seats_used_after,
        outcome,
        request_id,
        detail,
        id,
    )


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
