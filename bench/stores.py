"""Stores for the benchmark: licensed for every editor it will start, holding a set number of seats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, func, insert, select, text, update

from adapters.sql import SqlStore, create_store_engine, migrate
from adapters.sql import tables as t
from domain.licenses import License, ServiceAnswer
from domain.moments import utc_now
from domain.services.agreement import accept_agreement

BENCH_KEY = "AVTR-BENCH-0001"
GRACE = timedelta(days=14)
PREFILL = "bench\\prefill"


def prepare_store(url: str, seats: int, held: int) -> None:
    """Migrate, accept the agreement, license `seats` seats and let `held` users hold one."""
    engine = create_store_engine(url)
    migrate(engine)
    store = SqlStore(engine)
    now = utc_now()
    accept_agreement("benchmark", store, now, GRACE)
    license = License(key=BENCH_KEY, added_at=now, next_check_at=now + timedelta(days=3))
    license.record_answer(
        ServiceAnswer(BENCH_KEY, "active", seats, now + timedelta(days=365), now, "Bench"), now
    )
    with store.writing() as uow:
        uow.licenses.add(license)
        uow.commit()
    _fill(engine, held)
    engine.dispose()
    refresh_statistics(url)


def reset_seats(url: str, held: int) -> None:
    """Take back every seat but the `held` pre-filled ones and empty the audit log (set-up, not timed)."""
    engine = create_store_engine(url)
    with engine.begin() as connection:
        connection.execute(delete(t.seats).where(~t.seats.c.username.startswith(PREFILL, autoescape=True)))
        connection.execute(delete(t.audit_events).where(t.audit_events.c.kind != "agreement_accepted"))
        count = connection.execute(select(func.count()).select_from(t.seats)).scalar_one()
        connection.execute(update(t.installation).values(seats_in_use=count))
    engine.dispose()
    if count != held:
        raise RuntimeError(f"the benchmark store holds {count} pre-filled seats, not {held}")
    refresh_statistics(url)


def refresh_statistics(url: str) -> None:
    """On PostgreSQL, VACUUM ANALYZE the enrolment path's tables (set-up, not timed).

    Autovacuum does this in an installation soon after its tables change; the benchmark
    changes them by tens of thousands of rows in seconds, faster than autovacuum looks
    (once a minute). Without it, the plans PostgreSQL makes would depend on when
    autovacuum last ran. SQLite keeps no statistics the enrolment path uses.
    """
    engine = create_store_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for table in (t.seats, t.audit_events, t.installation):
                connection.execute(text(f"VACUUM ANALYZE {table.name}"))
    engine.dispose()


def _fill(engine: Engine, count: int) -> None:
    assigned = datetime.now(UTC)
    with engine.begin() as connection:
        for start in range(0, count, 5000):
            rows = [
                {
                    "username": f"{PREFILL}{number:07d}",
                    "display_name": f"{PREFILL}{number:07d}",
                    "assignment": "manual",
                    "assigned_at": assigned,
                    "assigned_by": "benchmark",
                    "last_seen_at": None,
                    "request_id": None,
                }
                for number in range(start, min(start + 5000, count))
            ]
            connection.execute(insert(t.seats), rows)
        connection.execute(update(t.installation).values(seats_in_use=count))
