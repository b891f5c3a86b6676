"""One engine per process, set up for the store's dialect."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

# How long a SQLite writer waits for another to finish before giving up.
SQLITE_BUSY_TIMEOUT_SECONDS = 30

# The execution option that asks SQLite for a transaction that takes the write lock at BEGIN.
SQLITE_WRITE_OPTION = "avtor_sqlite_write"

# The store was briefly unreachable or busy (a restart, a lock held past the lock timeout, a
# cancelled statement): worth trying again, unlike a wrong statement or a broken constraint.
TRANSIENT_STORE_ERRORS = (OperationalError, InterfaceError, DisconnectionError)


def create_store_engine(
    url: str,
    *,
    lock_timeout: timedelta | None = None,
    statement_timeout: timedelta | None = None,
    **options: Any,
) -> Engine:
    """Create the engine for `url`: SQLite with WAL and locking writes, or PostgreSQL.

    On PostgreSQL every session of the engine gives up waiting for a lock after
    `lock_timeout` and cancels any statement running longer than `statement_timeout`,
    each with an OperationalError the caller can retry; None waits as long as it takes.
    SQLite writers wait for each other up to SQLITE_BUSY_TIMEOUT_SECONDS either way.
    """
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url, **options)
    options.setdefault("pool_size", 5)
    options.setdefault("max_overflow", 10)
    options.setdefault("pool_recycle", 1800)
    timeouts = {"lock_timeout": lock_timeout, "statement_timeout": statement_timeout}
    session_options = [
        f"-c {name}={_milliseconds(limit)}" for name, limit in timeouts.items() if limit is not None
    ]
    # psycopg prepares a statement run five times on one connection, and PostgreSQL may then
    # keep a generic plan chosen when the seats table was small: a full scan of every seat
    # for each look-up of a batch's names. A plan made for the names at hand stays an index
    # look-up however the table grows (measured: 65 ms against 3.4 ms a look-up at 20,100 seats).
    session_options.append("-c plan_cache_mode=force_custom_plan")
    connect_args = dict(options.pop("connect_args", {}))
    given = connect_args.get("options", make_url(url).query.get("options", ""))
    connect_args["options"] = " ".join([given, *session_options]).strip()
    options["connect_args"] = connect_args
    return create_engine(url, **options)


def _milliseconds(limit: timedelta) -> int:
    # PostgreSQL reads 0 as "no limit": a limit shorter than a millisecond is one millisecond.
    return max(1, round(limit.total_seconds() * 1000))


def _sqlite_engine(url: str, **options: Any) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        **options,
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own transaction handling is switched off so that BEGIN is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        # A writer takes SQLite's write lock at BEGIN, so that two writers can never both
        # read the seat count and then both grant the last seat.
        immediate = connection.get_execution_options().get(SQLITE_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
