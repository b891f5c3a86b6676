"""The cheap read of the enrolment path: the ledger at a glance, without its lock."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Engine, select

from adapters.sql import tables as t
from domain.ports import SeatGlance


@dataclass(frozen=True)
class GlanceRow:
    """What one glance read: the seat counter, the licenses' version and the seat holders asked for."""

    seats_in_use: int
    licenses_version: int
    holders: dict[str, SeatGlance]


class GlanceReader:
    """Reads the installation row and the seats of some editors in one statement."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        dialect = engine.dialect.name
        self._statement = (
            select(
                t.installation.c.seats_in_use,
                t.installation.c.licenses_version,
                t.seats.c.username,
                t.seats.c.last_seen_at,
                t.seats.c.request_id,
            )
            .select_from(
                t.installation.outerjoin(t.seats, t.one_of(t.seats.c.username, "usernames", dialect))
            )
            .where(t.installation.c.id == 1)
        )
        # One statement is its own consistent snapshot. On PostgreSQL it runs outside a
        # transaction, which spares BEGIN and ROLLBACK, two round trips; SQLite has none.
        self._options = {"isolation_level": "AUTOCOMMIT"} if dialect == "postgresql" else {}

    def read(self, usernames: Collection[str]) -> GlanceRow:
        """Seats in use, the licenses' version and which of `usernames` hold seats."""
        with self._engine.connect() as connection:
            connection.execution_options(**self._options)
            rows = connection.execute(self._statement, {"usernames": usernames}).all()
        if not rows:
            raise LookupError("The store has no installation row: run `avtorlm migrate`.")
        holders = {
            username: SeatGlance(last_seen_at, request_id)
            for _, _, username, last_seen_at, request_id in rows
            if username is not None
        }
        return GlanceRow(rows[0].seats_in_use, rows[0].licenses_version, holders)
