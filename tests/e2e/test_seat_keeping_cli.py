"""`avtorlm user reserve|unreserve`, `user add --reserve` and the policy in `status`, as run for real."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from adapters.sql import SqlStore, create_store_engine
from domain.licenses import ServiceAnswer
from domain.moments import utc_now
from domain.ports import Verified
from domain.services.agreement import accept_agreement
from domain.services.licenses import add_license, remove_license
from domain.services.users import add_user, list_users
from tasks.sending import send_admin_task
from tests.fakes import FakeLicenseService
from tests.support.cli import Avtorlm
from tests.support.manager import celery_client
from tests.support.servers import RedisServer, free_port
from tests.support.stores import migrated_engine
from tests.support.workers import CeleryProcess, avtor_environment
from worker.schedule import RECLAIM_IDLE

GRACE = timedelta(days=14)


@pytest.fixture
def cli(tmp_path: Path) -> Avtorlm:
    """The command line on a SQLite store with two licenses (2 and 1 seats) and the agreement accepted."""
    url = f"sqlite:///{tmp_path / 'avtor.sqlite3'}"
    migrated_engine(url).dispose()
    store = SqlStore(create_store_engine(url))
    accept_agreement("Ada Admin", store, utc_now(), GRACE)
    for key, seats in (("AVTR-KEEP-0002", 2), ("AVTR-KEEP-0001", 1)):
        answer = ServiceAnswer(key, "active", seats, utc_now() + timedelta(days=365), utc_now())
        service = FakeLicenseService({key: Verified(answer)})
        add_license(key, "ada", store, service, utc_now(), GRACE, timedelta(days=3))
    store.engine.dispose()
    return Avtorlm(avtor_environment(database_url=url, redis_url=f"redis://127.0.0.1:{free_port()}/0"))


def test_reserving_and_releasing_users_from_the_command_line(cli: Avtorlm) -> None:
    assert cli.ok("user", "add", "sitecore\\Ann", "--reserve").out.splitlines()[0] == (
        "sitecore\\Ann now holds a reserved seat."
    )
    assert cli.ok("user", "reserve", "sitecore\\Bob").out.splitlines()[0] == (
        "sitecore\\Bob now holds a reserved seat."
    )
    assert "keeps a seat, no longer reserved" in cli.ok("user", "unreserve", "sitecore\\bob").out
    listed = cli.json("user", "list")
    assert {user["username"]: user["reserved"] for user in listed["users"]} == {
        "sitecore\\ann": True,
        "sitecore\\bob": False,
    }
    assert "RESERVED" in cli.ok("user", "list").out
    cli.ok("user", "add", "cid")
    refused = cli("user", "reserve", "dan")
    assert (refused.code, refused.err.strip()) == (
        1,
        "No seat is free for dan: all 3 seats are in use. Remove a user first, or add a license; "
        "nothing was changed.",
    )
    again = cli("user", "unreserve", "cid")
    assert (again.code, again.err.strip()) == (
        1,
        "cid holds a seat that is not reserved: nothing was changed.",
    )
    events = cli.ok("events").out
    assert "user_reserved" in events and "user_unreserved" in events


def test_status_says_which_policy_is_in_force_and_who_is_refused(cli: Avtorlm) -> None:
    store = SqlStore(create_store_engine(cli.env["AVTOR_DATABASE_URL"]))
    for name in ("ann", "bob", "cid"):
        add_user(name, "ada", store, utc_now(), GRACE)
    remove_license("AVTR-KEEP-0001", "ada", store, utc_now(), GRACE)
    store.engine.dispose()
    default = cli.ok("status").out
    assert "Policy:         block-all" in default
    assert "Nobody may use Avtor until 1 user is removed" in default
    newest = cli("status", over_limit_policy="block-newest")
    assert newest.code == 0
    assert "Policy:         block-newest" in newest.out
    assert "Refused:        cid (the newest seat holders beyond the licensed count)" in newest.out
    document = cli("status", "--json", over_limit_policy="block-newest").json()
    assert (document["over_limit_policy"], document["refused"]) == ("block-newest", ["cid"])


def test_user_idle_lists_who_would_lose_a_seat_and_changes_nothing(cli: Avtorlm) -> None:
    store = SqlStore(create_store_engine(cli.env["AVTOR_DATABASE_URL"]))
    add_user("sitecore\\Ann", "ada", store, utc_now(), GRACE)
    add_user("bob", "ada", store, utc_now(), GRACE, reserved=True)
    add_user("cid", "ada", store, utc_now(), GRACE)
    store.touch_seats(["sitecore\\ann", "bob"], utc_now() - timedelta(days=100))
    store.touch_seats(["cid"], utc_now() - timedelta(days=3))
    store.engine.dispose()
    listed = cli.ok("user", "idle", "--for", "90d").out
    assert "sitecore\\Ann" in listed and "bob" not in listed and "cid" not in listed
    assert "1 seat holder not seen that long" in listed
    document = cli.json("user", "idle", "--for", "2d")
    assert [user["username"] for user in document["users"]] == ["sitecore\\ann", "cid"]
    unset = cli("user", "idle")
    assert (unset.code, unset.err.strip()) == (
        1,
        "Say how long, e.g. --for 90d: AVTOR_RECLAIM_IDLE_AFTER is not set.",
    )
    assert "sitecore\\Ann" in cli("user", "idle", reclaim_idle_after="90d").out
    assert len(cli.json("user", "list")["users"]) == 3


def test_an_admin_worker_reclaims_idle_seats_when_the_schedule_ticks(
    cli: Avtorlm, redis_service: RedisServer
) -> None:
    url = cli.env["AVTOR_DATABASE_URL"]
    store = SqlStore(create_store_engine(url))
    for name in ("ann", "bob", "cid"):
        add_user(name, "ada", store, utc_now(), GRACE, reserved=name == "bob")
    store.touch_seats(["ann", "bob"], utc_now() - timedelta(days=100))
    env = avtor_environment(database_url=url, redis_url=redis_service.url, reclaim_idle_after="90d")
    worker = CeleryProcess.worker(env, "admin", queues="avtor.admin", concurrency=1).start()
    try:
        send_admin_task(celery_client(redis_service.url), RECLAIM_IDLE, {})
        deadline = time.monotonic() + 30
        while "ann" in holders(store) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert holders(store) == {"bob", "cid"}, worker.log()[-4000:]
    finally:
        worker.cleanup()
    events = cli.json("events", "--kind", "seat_reclaimed")["events"]
    assert [(event["subject"], event["actor"]) for event in events] == [("ann", "idle-seat-reclamation")]
    assert events[0]["detail"].startswith("last seen at ")
    store.engine.dispose()


def holders(store: SqlStore) -> set[str]:
    return {seat.username for seat in list_users(store).seats}
