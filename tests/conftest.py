"""Fixtures shared by every kind of test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from adapters.sql import SqlStore
from tests.support.servers import PostgresServer, RedisServer, postgres_server, redis_server
from tests.support.stores import empty_store, migrated_engine


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for this run."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def redis_service() -> Iterator[RedisServer]:
    """A real Redis database index for this run."""
    with redis_server() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_store_url(postgres: PostgresServer) -> str:
    """One migrated PostgreSQL database for this run's store tests."""
    url = postgres.create_database("store")
    migrated_engine(url).dispose()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty, migrated store: a SQLite file, then PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'avtor.sqlite3'}"
        migrated_engine(url).dispose()
        return url
    url = str(request.getfixturevalue("postgres_store_url"))
    engine = migrated_engine(url)
    empty_store(engine)
    engine.dispose()
    return url


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    """An engine on the test's store."""
    from adapters.sql import create_store_engine

    engine = create_store_engine(store_url)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> SqlStore:
    """The SQL store of the test."""
    return SqlStore(engine)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI a skipped test is a failure: every test must run against the real thing."""
    if os.environ.get("CI", "").lower() not in {"1", "true", "yes"}:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped and reporter is not None:
        reporter.write_line(f"CI: {len(skipped)} test(s) were skipped; every test must run.", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
