"""A hung license service holds up the admin queue only: editors' starts are still answered."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from adapters.license_service import HttpLicenseService
from adapters.sql import SqlStore
from domain.moments import utc_now
from domain.services.agreement import accept_agreement
from domain.services.licenses import add_license
from tests.support.license_server import LicenseServerProcess, key_entry, license_server
from tests.support.manager import Manager, celery_client
from tests.support.publishing import collect_decisions, publish_starts
from tests.support.servers import RedisServer
from tests.support.stores import migrated_engine
from tests.support.workers import CeleryProcess, avtor_environment

KEY = "AVTR-HUNG-ACTV-0005"
GRACE, EVERY = timedelta(days=14), timedelta(days=3)


@pytest.fixture
def server() -> Iterator[LicenseServerProcess]:
    with license_server([key_entry(KEY, 5)]) as running:
        yield running


@pytest.fixture
def store(store_url: str, server: LicenseServerProcess) -> Iterator[SqlStore]:
    engine = migrated_engine(store_url)
    store = SqlStore(engine)
    accept_agreement("Ada Admin", store, utc_now(), GRACE)
    service = HttpLicenseService(server.url, server.public_key, connect_timeout=1.0, read_timeout=2.0)
    add_license(KEY, "ada", store, service, utc_now(), GRACE, EVERY)
    yield store
    engine.dispose()


def test_an_editor_is_answered_while_the_license_service_hangs_an_admin_task(
    server: LicenseServerProcess, store: SqlStore, redis_service: RedisServer
) -> None:
    redis_service.flush()
    env = avtor_environment(
        redis_url=redis_service.url,
        database_url=store.engine.url.render_as_string(hide_password=False),
        license_server_url=server.url,
        license_server_public_key=server.public_key,
        license_server_timeout="60s",
        license_server_attempts="1",
    )
    enrolment = CeleryProcess.worker(env, "enrolment", queues="avtor.enrolment", concurrency=1).start()
    admin = CeleryProcess.worker(env, "admin", queues="avtor.admin", concurrency=1).start()
    manager = Manager(celery_client(redis_service.url), enrolment, admin)
    try:
        server.fail(delay_seconds=120)
        refresh = manager.app.send_task("avtor.admin.refresh_all")
        admin.wait_for_log(f"Task avtor.admin.refresh_all[{refresh.id}] received")
        decision = manager.call("avtor.enrol", username="sitecore\\bob")
        assert (decision["allowed"], decision["outcome"]) == (True, "granted")
        # Many more starts, all decided while the license service still hangs.
        starts = publish_starts(redis_service.url, 3, 200, 20)
        decided = collect_decisions(redis_service.url, [task_id for task_id, _, _ in starts], timeout=60)
        assert len(decided) == len(starts)
        assert {result["status"] for result in decided.values()} == {"SUCCESS"}
        assert not refresh.ready()
    finally:
        server.heal()
        admin.kill()
        admin.cleanup()
        enrolment.cleanup()
