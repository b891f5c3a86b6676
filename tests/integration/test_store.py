"""The SQL store against real SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, make_url, text
from sqlalchemy.exc import DBAPIError, OperationalError

from adapters.sql import (
    SchemaOutdated,
    SqlStore,
    StoreUnreachable,
    check_schema,
    create_store_engine,
    migrate,
    schema,
)
from adapters.sql.engine import SQLITE_BUSY_TIMEOUT_SECONDS
from adapters.sql.schema import current_revision, head_revision
from domain.agreement import Acceptance
from domain.enrolment import EnrolmentRequest, Outcome
from domain.events import EventKind
from domain.licenses import License, ServiceAnswer
from domain.ports import Verified
from domain.seats import Assignment
from domain.services.agreement import accept_agreement
from domain.services.enrolment import decide_under_lock, enrol_editors
from domain.services.licenses import add_license, remove_license
from domain.services.users import add_user, remove_user
from tests.fakes import FakeLicenseService
from tests.support.servers import PostgresServer

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
GRACE = timedelta(days=14)
EVERY = timedelta(days=3)


def licensed(store: SqlStore, seats: int, key: str = "AVTR-0001") -> None:
    accept_agreement("admin", store, NOW, GRACE)
    answer = ServiceAnswer(key, "active", seats, NOW + timedelta(days=365), NOW, "Example Corp")
    add_license(key, "admin", store, FakeLicenseService({key: Verified(answer)}), NOW, GRACE, EVERY)


def start(store: SqlStore, *names: str, request_id: str | None = None) -> list[Outcome]:
    requests = [EnrolmentRequest(name.lower(), name, request_id) for name in names]
    return [decision.outcome for decision in enrol_editors(requests, store, NOW, GRACE)]


def rows_and_counter(store: SqlStore) -> tuple[int, int]:
    with store.reading() as uow:
        return uow.seats.total_rows(), uow.seats.count()


def test_the_migrated_store_is_at_the_head_revision(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()
    check_schema(engine)


def test_migrating_twice_changes_nothing(engine: Engine) -> None:
    assert migrate(engine) == (head_revision(), head_revision())


def test_the_installation_has_a_stable_identity(store: SqlStore) -> None:
    with store.reading() as first, store.reading() as second:
        assert first.installation_id == second.installation_id
        assert len(first.installation_id) == 36


def test_instants_come_back_as_the_same_utc_instants(store: SqlStore) -> None:
    licensed(store, 5)
    with store.reading() as uow:
        [license] = uow.licenses.list()
        acceptance = uow.agreements.latest()
    assert license.expires_at == NOW + timedelta(days=365)
    assert license.expires_at is not None and license.expires_at.tzinfo is not None
    assert acceptance == Acceptance("1.0", "admin", NOW)


def test_claims_grant_up_to_the_licensed_seats(store: SqlStore) -> None:
    licensed(store, 2)
    assert start(store, "ann", "Bob", "BOB", "cid") == [
        Outcome.GRANTED,
        Outcome.GRANTED,
        Outcome.ALREADY_ENROLLED,
        Outcome.NO_SEATS,
    ]
    assert rows_and_counter(store) == (2, 2)
    with store.reading() as uow:
        seat = uow.seats.holders(["bob"])["bob"]
    assert (seat.display_name, seat.assignment) == ("Bob", Assignment.AUTOMATIC)


def test_a_repeated_request_id_changes_nothing_in_the_store(store: SqlStore) -> None:
    licensed(store, 1)
    assert start(store, "bob", request_id="r-1") == [Outcome.GRANTED]
    assert start(store, "ann", request_id="r-2") == [Outcome.NO_SEATS]
    with store.reading() as uow:
        events = len(uow.events.list())
    assert start(store, "bob", request_id="r-1") == [Outcome.GRANTED]
    assert start(store, "ann", request_id="r-2") == [Outcome.NO_SEATS]
    with store.reading() as uow:
        assert len(uow.events.list()) == events
    assert rows_and_counter(store) == (1, 1)


def test_a_start_sent_again_is_checked_against_the_ledger_as_it_stands(store: SqlStore) -> None:
    licensed(store, 1)
    licensed(store, 1, key="AVTR-0002")
    assert start(store, "bob", request_id="r-1") == [Outcome.GRANTED]
    assert start(store, "ann", request_id="r-2") == [Outcome.GRANTED]
    remove_license("AVTR-0002", "admin", store, NOW, GRACE)
    assert start(store, "bob", request_id="r-1") == [Outcome.OVER_LIMIT]
    remove_user("bob", "admin", store, NOW, GRACE)
    remove_user("ann", "admin", store, NOW, GRACE)
    # The seat granted under r-1 was taken back: the same start is decided anew, once.
    assert start(store, "bob", request_id="r-1") == [Outcome.GRANTED]
    assert start(store, "bob", request_id="r-1") == [Outcome.GRANTED]
    assert rows_and_counter(store) == (1, 1)
    with store.reading() as uow:
        again = [event for event in uow.events.list() if event.detail == "request r-1 sent again"]
    assert [(event.kind, event.outcome, event.request_id) for event in again] == [
        (EventKind.SEAT_REFUSED, "over_limit", None),
        (EventKind.SEAT_GRANTED, "granted", None),
    ]


def test_removing_a_user_frees_the_seat(store: SqlStore) -> None:
    licensed(store, 1)
    start(store, "bob")
    remove_user("BOB", "admin", store, NOW, GRACE)
    assert rows_and_counter(store) == (0, 0)
    assert start(store, "ann") == [Outcome.GRANTED]


def test_every_change_leaves_an_audit_event_with_counts(store: SqlStore) -> None:
    licensed(store, 2)
    add_user("ann", "admin", store, NOW, GRACE)
    start(store, "bob", "cid")
    remove_license("AVTR-0001", "admin", store, NOW, GRACE)
    start(store, "bob")
    remove_user("ann", "admin", store, NOW, GRACE)
    with store.reading() as uow:
        events = uow.events.list()
    summary = [
        (
            e.kind,
            e.subject,
            e.seats_total_before,
            e.seats_total_after,
            e.seats_used_before,
            e.seats_used_after,
        )
        for e in events
    ]
    assert summary == [
        (EventKind.AGREEMENT_ACCEPTED, "agreement 1.0", 0, 0, 0, 0),
        (EventKind.LICENSE_ADDED, "…0001", 0, 2, 0, 0),
        (EventKind.USER_ADDED, "ann", 2, 2, 0, 1),
        (EventKind.SEAT_GRANTED, "bob", 2, 2, 1, 2),
        (EventKind.SEAT_REFUSED, "cid", 2, 2, 2, 2),
        (EventKind.LICENSE_REMOVED, "…0001", 2, 0, 2, 2),
        (EventKind.SEAT_REFUSED, "bob", 0, 0, 2, 2),
        (EventKind.USER_REMOVED, "ann", 0, 0, 2, 1),
    ]
    assert [e.outcome for e in events if e.kind is EventKind.SEAT_REFUSED] == ["no_seats", "over_limit"]
    with store.reading() as uow:
        assert [e.kind for e in uow.events.list(kinds=[EventKind.SEAT_GRANTED])] == [EventKind.SEAT_GRANTED]
        assert len(uow.events.list(limit=3)) == 3
        assert uow.events.list(since=NOW + timedelta(seconds=1)) == []


def test_a_failed_unit_of_work_leaves_nothing_behind(store: SqlStore) -> None:
    licensed(store, 3)
    with pytest.raises(RuntimeError, match="boom"), store.writing() as uow:
        uow.licenses.remove("AVTR-0001")
        raise RuntimeError("boom")
    with store.reading() as uow:
        assert [license.key for license in uow.licenses.list()] == ["AVTR-0001"]


def test_a_reading_unit_of_work_cannot_write(store: SqlStore) -> None:
    with pytest.raises(RuntimeError, match="cannot change"), store.reading() as uow:
        uow.licenses.add(License(key="AVTR-X", added_at=NOW))


def test_last_seen_is_recorded_only_when_older_than_the_new_start(store: SqlStore) -> None:
    licensed(store, 1)
    start(store, "bob")
    store.touch_seats(["bob"], NOW + timedelta(hours=2))
    store.touch_seats(["bob"], NOW + timedelta(hours=1))
    with store.reading() as uow:
        assert uow.seats.holders(["bob"])["bob"].last_seen_at == NOW + timedelta(hours=2)


def test_another_process_sees_license_changes_at_a_glance(store_url: str) -> None:
    first, second = SqlStore(create_store_engine(store_url)), SqlStore(create_store_engine(store_url))
    licensed(first, 2)
    assert len(second.glance(["bob"]).licenses) == 1
    remove_license("AVTR-0001", "admin", first, NOW, GRACE)
    assert second.glance(["bob"]).licenses == ()
    first.engine.dispose()
    second.engine.dispose()


def test_users_are_listed_in_the_order_they_got_seats(store: SqlStore) -> None:
    licensed(store, 5)
    for name in ("cid", "ann", "bob"):
        start(store, name)
    with store.reading() as uow:
        assert [seat.username for seat in uow.seats.list()] == ["ann", "bob", "cid"]  # same instant: by name
        assert [seat.username for seat in uow.seats.list(limit=1, offset=1)] == ["bob"]


# --- schema checks at start-up -----------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/empty.sqlite3"
    postgres: PostgresServer = request.getfixturevalue("postgres")
    return postgres.create_database("empty")


def test_an_empty_store_is_refused_with_the_command_to_run(empty_url: str) -> None:
    engine = create_store_engine(empty_url)
    with pytest.raises(SchemaOutdated, match="run `avtorlm migrate`"):
        check_schema(engine)
    migrate(engine)
    check_schema(engine)
    engine.dispose()


def test_a_store_written_by_a_newer_version_is_refused(empty_url: str) -> None:
    engine = create_store_engine(empty_url)
    migrate(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    with pytest.raises(SchemaOutdated, match="which this version of the manager does not know"):
        check_schema(engine)
    engine.dispose()


def test_a_store_at_an_older_revision_is_refused_with_the_command_to_run(
    empty_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_store_engine(empty_url)
    migrate(engine)
    at = head_revision()
    # As a later version of the manager, whose head is a migration after this store's.
    monkeypatch.setattr(schema, "head_revision", lambda: "9999")
    with pytest.raises(SchemaOutdated, match=f"is at schema revision {at}, but this version needs 9999: run"):
        check_schema(engine)
    engine.dispose()


def test_an_unreachable_store_is_named_without_its_password() -> None:
    engine = create_store_engine("postgresql+psycopg://avtor:s3cret@127.0.0.1:1/avtor?connect_timeout=2")
    with pytest.raises(StoreUnreachable) as error:
        check_schema(engine)
    assert "127.0.0.1:1" in str(error.value)
    assert "s3cret" not in str(error.value)


def test_a_sqlite_store_writes_ahead_waits_for_its_lock_and_syncs_every_commit(tmp_path: Path) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path / 'avtor.sqlite3'}")
    with engine.connect() as connection:
        pragmas = {
            name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "busy_timeout", "synchronous", "foreign_keys")
        }
    engine.dispose()
    assert pragmas == {
        "journal_mode": "wal",
        "busy_timeout": SQLITE_BUSY_TIMEOUT_SECONDS * 1000,
        "synchronous": 2,  # FULL: a granted seat survives a power cut
        "foreign_keys": 1,
    }


# --- a failing database -------------------------------------------------------------------------


@pytest.fixture
def own_postgres_url(postgres: PostgresServer) -> str:
    """A migrated PostgreSQL database of the test's own, whose connections it may cut."""
    url = postgres.create_database("own")
    migrate(create_store_engine(url))
    return url


def cut_connections(url: str) -> int:
    """End every session of the database at `url`, as a server restart or a network cut would."""
    admin = create_store_engine(url)
    with admin.connect() as connection:
        cut = connection.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    admin.dispose()
    return int(cut)


def test_a_broken_table_fails_the_glance_and_the_locked_batch_with_sqlalchemy_errors(
    store: SqlStore, engine: Engine
) -> None:
    licensed(store, 5)
    start(store, "bob")
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE seats RENAME TO seats_elsewhere"))
    try:
        with pytest.raises(DBAPIError):
            store.glance(["bob"])
        with pytest.raises(DBAPIError):
            decide_under_lock([EnrolmentRequest("ann", "Ann", "r-1")], store, NOW, GRACE)
    finally:
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE seats_elsewhere RENAME TO seats"))
    assert start(store, "bob", "ann") == [Outcome.ALREADY_ENROLLED, Outcome.GRANTED]


def test_a_lost_postgresql_connection_fails_the_fast_path_with_sqlalchemy_errors_then_reconnects(
    own_postgres_url: str,
) -> None:
    store = SqlStore(create_store_engine(own_postgres_url))
    licensed(store, 5)
    assert start(store, "bob") == [Outcome.GRANTED]

    assert cut_connections(own_postgres_url) > 0
    with pytest.raises(OperationalError) as at_a_glance:
        store.glance(["bob"])
    assert at_a_glance.value.connection_invalidated
    assert start(store, "bob") == [Outcome.ALREADY_ENROLLED]

    assert cut_connections(own_postgres_url) > 0
    with pytest.raises(OperationalError) as under_the_lock:
        decide_under_lock([EnrolmentRequest("ann", "Ann", "r-1")], store, NOW, GRACE)
    assert under_the_lock.value.connection_invalidated
    assert start(store, "ann", request_id="r-1") == [Outcome.GRANTED]
    assert rows_and_counter(store) == (2, 2)
    store.engine.dispose()


def test_a_writer_gives_up_on_a_held_ledger_lock_after_the_lock_timeout(own_postgres_url: str) -> None:
    store = SqlStore(
        create_store_engine(
            own_postgres_url, lock_timeout=timedelta(milliseconds=300), statement_timeout=timedelta(seconds=5)
        )
    )
    licensed(store, 5)
    holder = create_store_engine(own_postgres_url)
    with holder.connect() as connection:
        # A stuck writer: it holds the installation row's lock and does nothing.
        connection.execute(text("SELECT id FROM installation WHERE id = 1 FOR UPDATE"))
        began = time.monotonic()
        with pytest.raises(OperationalError) as error:
            start(store, "bob")
        waited = time.monotonic() - began
        connection.rollback()
    assert isinstance(error.value.orig, psycopg.errors.LockNotAvailable)
    assert 0.3 <= waited < 1.5
    assert start(store, "bob") == [Outcome.GRANTED]  # the lock is free again: trying again works
    holder.dispose()
    store.engine.dispose()


def test_a_statement_running_past_the_statement_timeout_is_cancelled(own_postgres_url: str) -> None:
    engine = create_store_engine(
        own_postgres_url, lock_timeout=timedelta(seconds=2), statement_timeout=timedelta(milliseconds=200)
    )
    with engine.connect() as connection:
        settings = [
            connection.execute(text(f"SHOW {name}")).scalar()
            for name in ("lock_timeout", "statement_timeout")
        ]
        with pytest.raises(OperationalError) as error:
            connection.execute(text("SELECT pg_sleep(2)"))
    assert settings == ["2s", "200ms"]
    assert isinstance(error.value.orig, psycopg.errors.QueryCanceled)
    engine.dispose()


def test_the_timeouts_keep_options_given_in_the_url(own_postgres_url: str) -> None:
    url = (
        make_url(own_postgres_url)
        .update_query_dict({"options": "-c application_name=avtor-test"})
        .render_as_string(hide_password=False)
    )
    engine = create_store_engine(url, lock_timeout=timedelta(seconds=1))
    with engine.connect() as connection:
        names = connection.execute(text("SELECT current_setting('application_name')")).scalar()
        lock_timeout = connection.execute(text("SHOW lock_timeout")).scalar()
    engine.dispose()
    assert (names, lock_timeout) == ("avtor-test", "1s")


def test_postgresql_sessions_plan_each_statement_for_the_values_at_hand(own_postgres_url: str) -> None:
    # A generic plan chosen while the seats table was small would scan every seat for each
    # look-up once psycopg has prepared the statement.
    engine = create_store_engine(own_postgres_url)
    with engine.connect() as connection:
        mode = connection.execute(text("SHOW plan_cache_mode")).scalar()
    engine.dispose()
    assert mode == "force_custom_plan"
