"""The ledger's tables as the domain's repositories, inside one SQL unit of work."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, bindparam, delete, func, insert, select, update

from adapters.sql import tables as t
from adapters.sql.rows import (
    acceptance_of,
    event_of,
    event_values,
    license_of,
    license_values,
    seat_of,
    seat_values,
)
from domain.agreement import Acceptance
from domain.alerts import Alert, AlertKind, OpenAlert
from domain.events import AuditEvent, EventKind, EventTally
from domain.licenses import License
from domain.seats import Seat

if TYPE_CHECKING:
    from adapters.sql.store import SqlUnitOfWork

# "Last seen" moves forward only: rows already as recent are left alone.
touch_statement = (
    update(t.seats)
    .where(t.seats.c.username.in_(bindparam("usernames", expanding=True)))
    .where((t.seats.c.last_seen_at.is_(None)) | (t.seats.c.last_seen_at < bindparam("seen_at")))
    .values(last_seen_at=bindparam("seen_at"))
)


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
        rows = self._uow.read(select(t.licenses).order_by(t.licenses.c.added_at, t.licenses.c.key))
        return [license_of(row) for row in rows]

    def get(self, key: str) -> License | None:
        row = self._uow.read(select(t.licenses).where(t.licenses.c.key == key)).one_or_none()
        return None if row is None else license_of(row)

    def add(self, license: License) -> None:
        self._uow.write(insert(t.licenses).values(**license_values(license)))
        self._uow.licenses_changed()

    def save(self, license: License) -> None:
        self._uow.write(
            update(t.licenses).where(t.licenses.c.key == license.key).values(**license_values(license))
        )
        self._uow.licenses_changed()

    def remove(self, key: str) -> None:
        self._uow.write(delete(t.licenses).where(t.licenses.c.key == key))
        self._uow.licenses_changed()


class SqlSeats:
    """The seats table, counted by the installation row."""

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    def count(self) -> int:
        return self._uow.seats_in_use

    def holders(self, usernames: Collection[str]) -> dict[str, Seat]:
        if not usernames:
            return {}
        holders, _ = self._uow.look_up(usernames, ())
        return holders

    def add(self, seats: Sequence[Seat]) -> None:
        self._uow.add_seats([seat_values(seat) for seat in seats])

    def remove(self, username: str) -> None:
        result = self._uow.write(delete(t.seats).where(t.seats.c.username == username))
        self._uow.seats_in_use -= result.rowcount

    def set_reserved(self, username: str, reserved: bool) -> None:
        self._uow.write(update(t.seats).where(t.seats.c.username == username).values(reserved=reserved))

    def idle(self, seen_before: datetime) -> list[Seat]:
        seen = func.coalesce(t.seats.c.last_seen_at, t.seats.c.assigned_at)
        statement = (
            select(t.seats)
            .where(t.seats.c.reserved.is_(False), seen < seen_before)
            .order_by(seen, t.seats.c.username)
        )
        return [seat_of(row) for row in self._uow.read(statement)]

    def touch(self, usernames: Collection[str], seen_at: datetime) -> None:
        if usernames:
            self._uow.write(touch_statement, {"usernames": list(usernames), "seen_at": seen_at})

    def search(self, contains: str, limit: int | None = None, offset: int = 0) -> list[Seat]:
        statement = (
            select(t.seats)
            .where(_name_contains(contains))
            .order_by(t.seats.c.assigned_at, t.seats.c.username)
            .offset(offset)
        )
        if limit is not None:
            statement = statement.limit(limit)
        return [seat_of(row) for row in self._uow.read(statement)]

    def count_matching(self, contains: str) -> int:
        count: int = self._uow.read(
            select(func.count()).select_from(t.seats).where(_name_contains(contains))
        ).scalar_one()
        return count

    def list(self, limit: int | None = None, offset: int = 0) -> list[Seat]:
        statement = select(t.seats).order_by(t.seats.c.assigned_at, t.seats.c.username).offset(offset)
        if limit is not None:
            statement = statement.limit(limit)
        return [seat_of(row) for row in self._uow.read(statement)]

    def total_rows(self) -> int:
        """Count the rows themselves, to check the ledger's counter."""
        count: int = self._uow.read(select(func.count()).select_from(t.seats)).scalar_one()
        return count


class SqlEvents:
    """The audit log."""

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    def record(self, events: Sequence[AuditEvent]) -> None:
        self._uow.record_events([event_values(event) for event in events])

    def for_requests(self, request_ids: Collection[str]) -> dict[str, AuditEvent]:
        if not request_ids:
            return {}
        _, recorded = self._uow.look_up((), request_ids)
        return recorded

    def tally(self, kind: EventKind, limit: int | None = None) -> list[EventTally]:
        events = t.audit_events.c
        # min and max keep the column's type: the instants come back as UTC datetimes.
        latest = func.max(events.at).label("last_at")
        statement = (
            select(
                events.subject,
                events.outcome,
                func.count().label("times"),
                func.min(events.at).label("first_at"),
                latest,
            )
            .where(events.kind == kind.value)
            .group_by(events.subject, events.outcome)
            .order_by(latest.desc(), events.subject)
            .limit(limit)
        )
        return [
            EventTally(kind, row.subject, row.outcome, row.times, row.first_at, row.last_at)
            for row in self._uow.read(statement)
        ]

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
            return [event_of(row) for row in reversed(self._uow.read(statement).all())]
        return [event_of(row) for row in self._uow.read(statement)]


class SqlAgreements:
    """Acceptances of the license agreement."""

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    def latest(self) -> Acceptance | None:
        statement = select(t.agreement_acceptances).order_by(t.agreement_acceptances.c.id.desc()).limit(1)
        row = self._uow.read(statement).one_or_none()
        return None if row is None else acceptance_of(row)

    def record(self, acceptance: Acceptance) -> None:
        self._uow.write(
            insert(t.agreement_acceptances).values(
                version=acceptance.version,
                accepted_by=acceptance.accepted_by,
                accepted_at=acceptance.accepted_at,
            )
        )


def _name_contains(contains: str) -> ColumnElement[bool]:
    """User names (kept case-folded) that contain `contains` literally: % and _ are no wildcards."""
    escaped = contains.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return t.seats.c.username.like(f"%{escaped}%", escape="\\")


class SqlAlerts:
    """The open alerts table."""

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    def open(self) -> list[OpenAlert]:
        rows = self._uow.read(select(t.open_alerts).order_by(t.open_alerts.c.raised_at, t.open_alerts.c.key))
        return [
            OpenAlert(
                Alert(AlertKind(row.kind), row.subject, row.threshold, row.summary, row.action), row.raised_at
            )
            for row in rows
        ]

    def replace(self, alerts: Sequence[OpenAlert]) -> None:
        self._uow.write(delete(t.open_alerts))
        for open_alert in alerts:
            alert = open_alert.alert
            self._uow.write(
                insert(t.open_alerts).values(
                    key=alert.key,
                    kind=alert.kind.value,
                    subject=alert.subject,
                    threshold=alert.threshold,
                    summary=alert.summary,
                    action=alert.action,
                    raised_at=open_alert.raised_at,
                )
            )
