"""`avtorlm user reserve|unreserve`, `user add --reserve` and the policy in `status`, as run for real."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from adapters.sql import SqlStore, create_store_engine
from domain.licenses import ServiceAnswer
from domain.moments import utc_now
from domain.ports import Verified
from domain.services.agreement import accept_agreement
from domain.services.licenses import add_license, remove_license
from domain.services.users import add_user
from tests.fakes import FakeLicenseService
from tests.support.cli import Avtorlm
from tests.support.servers import free_port
from tests.support.stores import migrated_engine
from tests.support.workers import avtor_environment

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
    assert "Refused:        1 newest seat holders: cid" in newest.out
    document = cli("status", "--json", over_limit_policy="block-newest").json()
    assert (document["over_limit_policy"], document["refused"]) == ("block-newest", ["cid"])
