"""The avtor.admin license tasks through Redis and a real worker, against the development license server."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine

from tasks.sending import send_admin_task
from tests.support.license_server import LicenseServerProcess, key_entry, license_server
from tests.support.manager import Manager, celery_client
from tests.support.servers import PostgresServer, RedisServer
from tests.support.stores import empty_store, migrated_engine
from tests.support.workers import CeleryProcess, avtor_environment

# Who the trusted caller (here, the test) says asks for each change.
ACTOR = "ada (e2e)"
FIVE, TEN = "AVTR-TASK-ACTV-0005", "AVTR-TASK-ACTV-0010"
KEYS = [
    key_entry(FIVE, 5, expires_at="2031-06-30T23:59:59Z"),
    key_entry(TEN, 10, expires_at=None),
    key_entry("AVTR-TASK-RVKD-0009", 9, "revoked"),
]


@pytest.fixture(scope="module")
def server() -> Iterator[LicenseServerProcess]:
    with license_server(KEYS) as running:
        yield running


@pytest.fixture(scope="module")
def store_engine(postgres: PostgresServer) -> Iterator[Engine]:
    engine = migrated_engine(postgres.create_database("license_tasks"))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def manager(
    server: LicenseServerProcess,
    store_engine: Engine,
    redis_service: RedisServer,
) -> Iterator[Manager]:
    """A worker on the admin queue, and a client that sends it tasks.

    The worker logs at DEBUG, where Celery writes each message's headers: no full key may be in them.
    """
    redis_service.flush()
    env = avtor_environment(
        redis_url=redis_service.url,
        database_url=store_engine.url.render_as_string(hide_password=False),
        license_server_url=server.url,
        license_server_public_key=server.public_key,
        license_server_timeout="2s",
        license_server_attempts="2",
    )
    worker = CeleryProcess.worker(env, "admin", queues="avtor.admin", concurrency=1, loglevel="DEBUG").start()
    try:
        yield Manager(celery_client(redis_service.url), worker)
    finally:
        worker.cleanup()


@pytest.fixture(autouse=True)
def fresh(store_engine: Engine, server: LicenseServerProcess) -> None:
    empty_store(store_engine)
    server.heal()
    for entry in KEYS:
        server.put_key(entry["key"], **{name: value for name, value in entry.items() if name != "key"})


def accepted(manager: Manager) -> None:
    assert manager.call("avtor.admin.accept_eula", accepted_by="Ada Admin", actor=ACTOR)["ok"]


def test_adding_a_license_shows_its_seats_and_expiry_with_the_key_masked(manager: Manager) -> None:
    accepted(manager)
    result = manager.call("avtor.admin.add_license", license_key=f" {FIVE.lower()} ", actor=ACTOR)
    assert result["ok"], result
    assert result["message"] == "The license …0005 is added: 5 seats until 2031-06-30T23:59:59Z."
    license = result["license"]
    assert (license["key"], license["status"], license["seats"], license["expires_at"]) == (
        "…0005",
        "active",
        5,
        "2031-06-30T23:59:59Z",
    )
    assert license["last_verified_at"] is not None and license["next_revalidation_at"] is not None
    assert (result["seats_licensed"], result["seats_free"]) == (5, 5)
    assert FIVE not in json.dumps(result)


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("AVTR-TASK-NONE-0000", "No license with this key exists"),
        ("AVTR-TASK-RVKD-0009", "reports this key as revoked"),
        ("", "The license key is empty"),
    ],
)
def test_a_key_that_grants_nothing_is_refused_and_nothing_is_stored(
    manager: Manager, key: str, says: str
) -> None:
    accepted(manager)
    result = manager.call("avtor.admin.add_license", license_key=key, actor=ACTOR)
    assert result["ok"] is False
    assert says in result["message"]
    assert manager.call("avtor.admin.status")["licenses"] == []


def test_nothing_is_added_before_the_agreement_is_accepted(manager: Manager) -> None:
    result = manager.call("avtor.admin.add_license", license_key=FIVE, actor=ACTOR)
    assert result["ok"] is False
    assert "agreement" in result["message"]


def test_a_key_is_not_added_while_the_service_fails_and_the_message_says_to_try_again(
    manager: Manager, server: LicenseServerProcess
) -> None:
    accepted(manager)
    server.fail(fail_with=503)
    result = manager.call("avtor.admin.add_license", license_key=FIVE, actor=ACTOR)
    assert result["ok"] is False
    assert "try again" in result["message"]
    assert FIVE not in result["message"]
    assert manager.call("avtor.admin.status")["licenses"] == []


def test_a_key_already_added_is_refused(manager: Manager) -> None:
    accepted(manager)
    assert manager.call("avtor.admin.add_license", license_key=FIVE, actor=ACTOR)["ok"]
    result = manager.call("avtor.admin.add_license", license_key=FIVE, actor=ACTOR)
    assert result == {
        "ok": False,
        "message": "The license …0005 has already been added: refresh it instead to pick up changes.",
    }


def test_refreshing_picks_up_purchased_seats_and_refresh_all_reports_each_license(
    manager: Manager, server: LicenseServerProcess
) -> None:
    accepted(manager)
    five = manager.call("avtor.admin.add_license", license_key=FIVE, actor=ACTOR)["license"]
    manager.call("avtor.admin.add_license", license_key=TEN, actor=ACTOR)
    server.put_key(FIVE, seats=8)
    refreshed = manager.call("avtor.admin.refresh_license", license_id=five["id"], actor=ACTOR)
    assert refreshed["ok"], refreshed
    assert refreshed["outcome"] == "verified"
    assert refreshed["message"] == "The license …0005 is verified: 8 seats until 2031-06-30T23:59:59Z."
    assert refreshed["seats_licensed"] == 18
    server.put_key(TEN, status="suspended")
    everything = manager.call("avtor.admin.refresh_all", actor=ACTOR)
    assert everything["message"] == "2 licenses re-validated: 2 verified."
    outcomes = {
        check["key"]: (check["outcome"], check["license"]["status"]) for check in everything["checked"]
    }
    assert outcomes == {"…0005": ("verified", "active"), "…0010": ("verified", "suspended")}
    assert everything["seats_licensed"] == 8
    assert FIVE not in json.dumps(everything) and TEN not in json.dumps(everything)


def test_a_failed_refresh_keeps_the_seats_and_shows_the_error_in_the_status(
    manager: Manager, server: LicenseServerProcess
) -> None:
    accepted(manager)
    five = manager.call("avtor.admin.add_license", license_key=FIVE, actor=ACTOR)["license"]
    server.fail(signature="wrong")
    refreshed = manager.call("avtor.admin.refresh_license", license_id=five["id"], actor=ACTOR)
    assert refreshed["outcome"] == "could_not_verify"
    assert "It keeps its 5 seats until" in refreshed["message"]
    [license] = manager.call("avtor.admin.status")["licenses"]
    assert (license["status"], license["seats_granted"], license["failed_checks"]) == ("active", 5, 1)
    assert "signature does not verify" in license["last_error"]


def test_refreshing_or_removing_a_license_that_is_not_there_is_refused(manager: Manager) -> None:
    unknown = "3f1c2d9e-0000-4000-8000-000000000000"
    for task in ("avtor.admin.refresh_license", "avtor.admin.remove_license"):
        result = manager.call(task, license_id=unknown, actor=ACTOR)
        assert result == {
            "ok": False,
            "message": f"No license has the id {unknown}: it was removed, or never added. "
            "See the licenses with `avtorlm license list`.",
        }


def test_removing_a_license_drops_its_seats_and_says_by_how_many_users_are_over_the_limit(
    manager: Manager,
) -> None:
    accepted(manager)
    manager.call("avtor.admin.add_license", license_key=FIVE, actor=ACTOR)
    ten = manager.call("avtor.admin.add_license", license_key=TEN, actor=ACTOR)["license"]
    for number in range(7):
        assert manager.call("avtor.admin.add_user", username=f"sitecore\\editor{number}", actor=ACTOR)["ok"]
    result = manager.call("avtor.admin.remove_license", license_id=ten["id"], actor=ACTOR)
    assert result["ok"]
    assert (
        result["seats_licensed"],
        result["seats_in_use"],
        result["over_limit"],
        result["over_limit_by"],
    ) == (
        5,
        7,
        True,
        2,
    )
    assert "2 more than licensed" in result["message"]


def test_wrong_arguments_are_refused_with_a_message(manager: Manager) -> None:
    result = manager.call("avtor.admin.add_license", key=FIVE, actor=ACTOR)
    assert result["ok"] is False
    assert "arguments are wrong" in result["message"]


def test_no_full_key_reaches_the_workers_log_when_a_license_is_added_refreshed_and_removed(
    manager: Manager, server: LicenseServerProcess
) -> None:
    [worker] = manager.workers
    accepted(manager)
    logged_before = len(worker.log())
    added = manager.call("avtor.admin.add_license", license_key=FIVE, actor=ACTOR)
    license_id = added["license"]["id"]
    server.put_key(FIVE, seats=8)
    refreshed = manager.call("avtor.admin.refresh_license", license_id=license_id, actor=ACTOR)
    assert (refreshed["outcome"], refreshed["seats_licensed"]) == ("verified", 8)
    assert manager.call("avtor.admin.remove_license", license_id=license_id, actor=ACTOR)["ok"]

    log = worker.log()[logged_before:]
    for task in ("add_license", "refresh_license", "remove_license"):
        assert f"avtor.admin.{task}[" in log
    # At DEBUG, Celery logs each message's headers, where the arguments' repr is.
    assert "'kwargsrepr': \"{'license_key': '…0005'" in log
    assert f"'license_id': '{license_id}'" in log
    assert FIVE not in log
    assert FIVE not in json.dumps([added, refreshed])


def test_a_store_that_refuses_connections_for_a_while_is_waited_out_by_celerys_retries(
    manager: Manager, store_engine: Engine, postgres: PostgresServer
) -> None:
    [worker] = manager.workers
    accepted(manager)
    assert manager.call("avtor.admin.add_license", license_key=FIVE, actor=ACTOR)["ok"]
    database = store_engine.url.database
    admin_url = postgres.admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
    retries_before = worker.log().count("retry: Retry in")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,)
            )
            pending = send_admin_task(
                manager.app, "avtor.admin.add_user", {"username": "sitecore\\ann", "actor": ACTOR}
            )
            worker.wait_for_log("retry: Retry in", timeout=30, count=retries_before + 1)
        finally:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    store_engine.dispose()
    answer = pending.get(timeout=60)
    assert answer["ok"] and answer["seats_in_use"] == 1, answer
    assert "retry: Retry in" in worker.log() and "OperationalError" in worker.log()


# --- trusting the license service: development mode, the vendor's key -----------------------------


def test_a_worker_in_development_mode_says_so_in_its_first_log_line(manager: Manager) -> None:
    [worker] = manager.workers
    # Log records start with "[date time: LEVEL/process]"; Python's own warnings (root) may come first.
    records = [line for line in worker.log().splitlines() if re.match(r"^\[\d{4}-\d\d-\d\d ", line)]
    assert "DEVELOPMENT MODE (AVTOR_DEVELOPMENT_MODE=1)" in records[0], worker.log()[:3000]


def test_beat_in_development_mode_says_so_in_its_first_log_line(
    store_engine: Engine, redis_service: RedisServer, server: LicenseServerProcess, tmp_path: Path
) -> None:
    env = avtor_environment(
        redis_url=redis_service.url,
        database_url=store_engine.url.render_as_string(hide_password=False),
        license_server_url=server.url,
    )
    beat = CeleryProcess.beat(env, tmp_path).start(wait_for="beat: Starting...")
    try:
        records = [line for line in beat.log().splitlines() if re.match(r"^\[\d{4}-\d\d-\d\d ", line)]
        assert "DEVELOPMENT MODE (AVTOR_DEVELOPMENT_MODE=1)" in records[0], beat.log()[:3000]
    finally:
        beat.cleanup()


def production_environment(redis_url: str, store_engine: Engine, **settings: str) -> dict[str, str]:
    """An installation's environment with development mode off."""
    return avtor_environment(
        redis_url=redis_url,
        database_url=store_engine.url.render_as_string(hide_password=False),
        development_mode="0",
        **settings,
    )


@pytest.mark.parametrize("role", ["worker", "beat"])
def test_without_the_vendors_public_key_workers_and_beat_refuse_to_start_naming_the_variable(
    store_engine: Engine, redis_service: RedisServer, tmp_path: Path, role: str
) -> None:
    env = production_environment(redis_service.url, store_engine)
    process = (
        CeleryProcess.worker(env, "keyless", queues="avtor.admin", concurrency=1)
        if role == "worker"
        else CeleryProcess.beat(env, tmp_path)
    )
    process.start(wait_for=None)
    try:
        assert process.process is not None
        assert process.process.wait(timeout=60) != 0
        log = process.log()
    finally:
        process.cleanup()
    assert "AVTOR_LICENSE_SERVER_PUBLIC_KEY is not set" in log, log
    assert "AVTOR_DEVELOPMENT_MODE=1" in log


def test_a_worker_given_the_development_key_outside_development_mode_refuses_to_start(
    store_engine: Engine, redis_service: RedisServer, server: LicenseServerProcess
) -> None:
    env = production_environment(
        redis_service.url,
        store_engine,
        license_server_url=server.url,
        license_server_public_key=server.public_key,
    )
    process = CeleryProcess.worker(env, "devkey", queues="avtor.admin", concurrency=1).start(wait_for=None)
    try:
        assert process.process is not None
        assert process.process.wait(timeout=60) != 0
        log = process.log()
    finally:
        process.cleanup()
    assert "AVTOR_LICENSE_SERVER_PUBLIC_KEY" in log
    assert "is the development license server's key" in log
