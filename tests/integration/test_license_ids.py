"""Licenses' ids on real SQLite and PostgreSQL: kept as added, and given to licenses older than ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

from adapters.sql import SqlStore, check_schema, create_store_engine, migrate
from adapters.sql.schema import alembic_config, head_revision
from domain.licenses import ServiceAnswer
from domain.ports import Verified
from domain.services.agreement import accept_agreement
from domain.services.licenses import add_license, license_key
from domain.services.revalidation import RevalidationRules, refresh_license
from tests.fakes import FakeLicenseService
from tests.support.servers import PostgresServer

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
GRACE, EVERY = timedelta(days=14), timedelta(days=3)
KEYS = ("AVTR-IDS1-ACTV-0001", "AVTR-IDS2-ACTV-0002")


def service() -> FakeLicenseService:
    return FakeLicenseService(
        {key: Verified(ServiceAnswer(key, "active", 5, None, NOW, "Example Corp")) for key in KEYS}
    )


def test_a_license_keeps_the_id_it_was_added_with_and_is_found_by_it(store: SqlStore) -> None:
    accept_agreement("Ada Admin", store, NOW, GRACE)
    views = [add_license(key, "ada", store, service(), NOW, GRACE, EVERY) for key in KEYS]
    assert len({view.id for view in views}) == 2
    assert all(len(view.id) == 36 and view.key not in view.id for view in views)
    rules = RevalidationRules(EVERY, timedelta(minutes=5), GRACE)
    checked = refresh_license(KEYS[0], "ada", store, service(), NOW + timedelta(hours=1), rules)
    assert checked.view is not None and checked.view.id == views[0].id
    with store.reading() as uow:
        assert {license.key: license.id for license in uow.licenses.list()} == {
            view.key: view.id for view in views
        }
    assert [license_key(view.id, store) for view in views] == list(KEYS)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'avtor.sqlite3'}"
    postgres: PostgresServer = request.getfixturevalue("postgres")
    return postgres.create_database("license_ids")


def test_licenses_added_before_ids_existed_each_get_one_when_the_store_is_migrated(
    empty_store_url: str,
) -> None:
    engine = create_store_engine(empty_store_url)
    try:
        with engine.connect() as connection:
            config = alembic_config(engine)
            config.attributes["connection"] = connection
            command.upgrade(config, "0002_console_access")
            for key in KEYS:
                connection.execute(
                    text(
                        "INSERT INTO licenses (key, added_at, seats, customer, failed_checks) "
                        "VALUES (:key, :added_at, 5, 'Example Corp', 0)"
                    ),
                    {"key": key, "added_at": NOW.replace(tzinfo=None)},
                )
            connection.commit()

        before, after = migrate(engine)
        # Later migrations may follow this one: the store ends at whatever is the head.
        assert before == "0002_console_access" and after == head_revision()
        check_schema(engine)
        store = SqlStore(engine)
        with store.reading() as uow:
            ids = {license.key: license.id for license in uow.licenses.list()}
        assert sorted(ids) == sorted(KEYS)
        assert len(set(ids.values())) == 2 and all(len(value) == 36 for value in ids.values())
        assert [license_key(ids[key], store) for key in KEYS] == list(KEYS)
    finally:
        engine.dispose()
