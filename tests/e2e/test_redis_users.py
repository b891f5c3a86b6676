"""The whole manager on the Redis users of config/redis_users.py: real processes, each as its own user.

The enrolment consumer, a Celery admin worker (`celery -A worker worker -Q
avtor.admin`) and beat run as `avtor-worker`, `avtorlm` as `avtor-admin`, and a
host enrols as `avtor-host`. Each does its whole job, and the server's ACL log
shows nothing refused to any of them (tests/integration/test_redis_users.py checks
what each is refused).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.license_service import HttpLicenseService
from adapters.sql import SqlStore, create_store_engine
from config.redis_users import Role
from domain.moments import utc_now
from domain.services.agreement import accept_agreement
from domain.services.licenses import add_license
from host_client import EnrolmentClient
from tests.support.cli import Avtorlm
from tests.support.consumers import ConsumerProcess
from tests.support.license_server import LicenseServerProcess, key_entry, license_server
from tests.support.redis_users import InstallationUsers, redis_users
from tests.support.servers import RedisServer
from tests.support.stores import migrated_engine
from tests.support.workers import CeleryProcess, avtor_environment

KEY = "AVTR-ACLS-ACTV-0004"
GRACE, EVERY = timedelta(days=14), timedelta(days=3)
# What the admin worker runs with (docs/redis-users.md): nothing its user may not send.
QUIET = ("--without-heartbeat",)


@pytest.fixture
def users(redis_service: RedisServer) -> Iterator[InstallationUsers]:
    redis_service.flush()
    with redis_users(redis_service.url) as created:
        yield created


@pytest.fixture
def server() -> Iterator[LicenseServerProcess]:
    with license_server([key_entry(KEY, 4, expires_at="2031-06-30T23:59:59Z")]) as running:
        yield running


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'avtor.sqlite3'}"
    migrated_engine(url).dispose()
    return url


def environment(
    store_url: str, server: LicenseServerProcess, redis_url: str, **settings: str
) -> dict[str, str]:
    return avtor_environment(
        database_url=store_url,
        redis_url=redis_url,
        license_server_url=server.url,
        license_server_public_key=server.public_key,
        **settings,
    )


def with_license(store_url: str, server: LicenseServerProcess) -> None:
    """The agreement accepted and the key added, in-process."""
    store = SqlStore(create_store_engine(store_url))
    service = HttpLicenseService(server.url, server.public_key, connect_timeout=1.0, read_timeout=2.0)
    try:
        accept_agreement("Ada Admin", store, utc_now(), GRACE)
        add_license(KEY, "ada", store, service, utc_now(), GRACE, EVERY)
    finally:
        store.engine.dispose()


def refused(users: InstallationUsers) -> list[dict[str, Any]]:
    """What the server refused the three users, but CLIENT SETINFO, which redis-py sends and shrugs off."""
    return [entry for entry in users.refusals() if entry["object"] != "client|setinfo"]


def test_a_host_enrols_through_a_consumer_running_as_the_worker_user_and_avtorlm_reads_the_stream(
    users: InstallationUsers, store_url: str, server: LicenseServerProcess
) -> None:
    with_license(store_url, server)
    # A short visibility timeout: the consumer looks for entries to take over every half second.
    workers = environment(store_url, server, users.url(Role.WORKER), enrolment_visibility_timeout="2s")
    consumer = ConsumerProcess(workers, "acl-consumer").start()
    try:
        with EnrolmentClient(users.url(Role.HOST)) as editors:
            first = editors.enrol("sitecore\\bob", request_id="acl-1", timeout=30)
            assert (first["outcome"], first["seats_used"]) == ("granted", 1)
            request_id = editors.send("sitecore\\bob", request_id="acl-2")
            assert editors.decision(request_id, timeout=30)["outcome"] == "already_enrolled"
            # Read without taking it (LRANGE), as a host showing its editor a wait does.
            editors.send("sitecore\\ann", request_id="acl-3")
            deadline = time.monotonic() + 30
            while (found := editors.peek("acl-3")) is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert found is not None and found["outcome"] == "granted"

        avtorlm = Avtorlm(environment(store_url, server, users.url(Role.ADMIN)))
        state = avtorlm.json("enrolment", "--kept")
        assert state["consumers_alive"] == 1, state
        users_seated = {user["username"] for user in avtorlm.json("user", "list")["users"]}
        assert users_seated == {"sitecore\\bob", "sitecore\\ann"}
    finally:
        consumer.stop()
    assert "NOPERM" not in consumer.log() and "NoPermission" not in consumer.log()
    assert refused(users) == []


def test_the_admin_worker_and_beat_run_as_the_worker_user_for_avtorlm_as_the_admin_user(
    users: InstallationUsers, store_url: str, server: LicenseServerProcess, tmp_path: Path
) -> None:
    with_license(store_url, server)
    workers = environment(store_url, server, users.url(Role.WORKER), revalidate_tick="1s")
    worker = CeleryProcess.worker(workers, "acl-admin", "avtor.admin", 1, *QUIET)
    beat = CeleryProcess.beat(workers, tmp_path)
    try:
        worker.start()
        beat.start(wait_for="beat: Starting...")
        server.put_key(KEY, seats=9)
        avtorlm = Avtorlm(environment(store_url, server, users.url(Role.ADMIN)))
        refreshed = avtorlm.ok("license", "refresh", KEY)
        assert "9 seats until 2031-06-30T23:59:59Z" in refreshed.out
        assert avtorlm.json("license", "refresh", "--all")["checked"][0]["outcome"] == "verified"
        # Beat's ticks reach the worker too.
        worker.wait_for_log("avtor.admin.revalidate_due", timeout=30, count=2)
        worker.stop()
        beat.stop()
        log = worker.log() + beat.log()
        assert "NOPERM" not in log and "NoPermission" not in log, log[-3000:]
    finally:
        beat.cleanup()
        worker.cleanup()
    assert refused(users) == []
