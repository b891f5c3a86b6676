"""`avtorlm` as an administrator runs it: the installed script against a real store and license server.

The refresh commands go through real Redis to a real admin worker. What a test
needs before the command it is about is set up in-process with the use cases
(each `avtorlm` run costs a second of start-up).
"""

from __future__ import annotations

import csv
import io
import os
import pwd
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from adapters.license_service import HttpLicenseService
from adapters.sql import SqlStore, create_store_engine
from domain.enrolment import EnrolmentRequest, Outcome
from domain.moments import format_instant, utc_now
from domain.seats import Assignment, Seat
from domain.services.agreement import accept_agreement
from domain.services.enrolment import enrol_editors
from domain.services.licenses import add_license
from domain.services.users import add_user
from tests.support.cli import AVTORLM, Avtorlm
from tests.support.license_server import LicenseServerProcess, key_entry, license_server
from tests.support.manager import celery_client
from tests.support.servers import PostgresServer, free_port
from tests.support.stores import migrated_engine
from tests.support.workers import CeleryProcess, avtor_environment

FIVE, THREE = "AVTR-CLI5-ACTV-0005", "AVTR-CLI3-PERP-0003"
EXPIRED, UNKNOWN = "AVTR-CLIX-EXPD-0025", "AVTR-CLI0-NONE-0000"
KEYS = [
    key_entry(FIVE, 5, expires_at="2031-06-30T23:59:59Z"),
    key_entry(THREE, 3, expires_at=None),
    key_entry(EXPIRED, 25, "expired", expires_in_days=-30),
]
AGREEMENT_TITLE = "AVTOR ADD-ON LICENSE AGREEMENT"
GRACE, EVERY = timedelta(days=14), timedelta(days=3)


@pytest.fixture(scope="module")
def server() -> Iterator[LicenseServerProcess]:
    with license_server(KEYS) as running:
        yield running


@pytest.fixture(autouse=True)
def vendor_keys_as_shipped(server: LicenseServerProcess) -> None:
    server.heal()
    for entry in KEYS:
        server.put_key(entry["key"], **{name: value for name, value in entry.items() if name != "key"})


def installation(store_url: str, server: LicenseServerProcess, redis_url: str | None = None) -> Avtorlm:
    """The command line of an installation on `store_url`; Redis names a closed port unless given."""
    return Avtorlm(
        avtor_environment(
            database_url=store_url,
            redis_url=redis_url or f"redis://127.0.0.1:{free_port()}/0",
            license_server_url=server.url,
            license_server_public_key=server.public_key,
            license_server_timeout="2s",
            license_server_attempts="1",
        )
    )


@pytest.fixture
def cli(store_url: str, server: LicenseServerProcess) -> Avtorlm:
    """The command line on an empty store: a SQLite file, then PostgreSQL."""
    return installation(store_url, server)


@pytest.fixture
def sqlite_cli(tmp_path: Path, server: LicenseServerProcess) -> Avtorlm:
    """The command line on an empty SQLite store, for tests whose store does not matter."""
    url = f"sqlite:///{tmp_path / 'avtor.sqlite3'}"
    migrated_engine(url).dispose()
    return installation(url, server)


def seeded(
    cli: Avtorlm, server: LicenseServerProcess, keys: tuple[str, ...] = (), users: tuple[str, ...] = ()
) -> Avtorlm:
    """The agreement accepted (if it was not), `keys` added and `users` given seats, in-process."""
    store = SqlStore(create_store_engine(cli.env["AVTOR_DATABASE_URL"]))
    service = HttpLicenseService(server.url, server.public_key, connect_timeout=1.0, read_timeout=2.0)
    try:
        accept_agreement("Ada Admin", store, utc_now(), GRACE)
        for key in keys:
            add_license(key, "ada", store, service, utc_now(), GRACE, EVERY)
        for user in users:
            add_user(user, "ada", store, utc_now(), GRACE)
    finally:
        store.engine.dispose()
    return cli


# --- the administrator's work, on SQLite and PostgreSQL ----------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("license", "remove", FIVE),
        ("license", "refresh", FIVE),
        ("license", "refresh", "--all"),
        ("user", "add", "sitecore\\ann"),
        ("user", "remove", "sitecore\\ann"),
    ],
)
def test_every_changing_command_before_acceptance_asks_for_it_and_changes_nothing(
    sqlite_cli: Avtorlm, command: tuple[str, ...]
) -> None:
    refused = sqlite_cli(*command)
    assert refused.code == 1, refused
    assert AGREEMENT_TITLE in refused.err
    assert 'avtorlm eula accept --by "Your Name"' in refused.err
    assert sqlite_cli.json("user", "list")["users"] == []
    assert sqlite_cli.json("events")["events"] == []


def test_a_changing_command_before_acceptance_shows_the_agreement_and_how_to_accept_it(
    sqlite_cli: Avtorlm,
) -> None:
    cli = sqlite_cli
    first = cli("license", "add", FIVE)
    assert first.code == 1
    assert AGREEMENT_TITLE in first.err
    assert 'avtorlm eula accept --by "Your Name"' in first.err
    assert "Not accepted yet" in cli.ok("eula", "show").out

    assert cli.ok("eula", "accept", "--by", "Ada Admin").out.strip() == (
        "The license agreement 1.0 is accepted by Ada Admin."
    )
    again = cli.json("eula", "accept", "--by", "Bob")
    assert "already accepted by Ada Admin" in again["message"] and "nothing was changed" in again["message"]
    assert cli.json("license", "list")["licenses"] == []


def test_licenses_and_users_from_the_first_seat_to_over_the_limit_and_back(
    cli: Avtorlm, server: LicenseServerProcess
) -> None:
    seeded(cli, server)
    added = cli.ok("license", "add", f" {THREE.lower()} ")
    assert added.out.splitlines()[0] == "The license …0003 is added: 3 seats with no expiry."
    assert THREE not in added.text
    seeded(cli, server, users=("sitecore\\Ann", "sitecore\\Bob"))
    assert cli.ok("user", "add", "sitecore\\Cid").out.splitlines() == [
        "sitecore\\Cid now holds a seat.",
        "Seats: 3 licensed, 3 in use, 0 free.",
    ]
    full = cli.ok("status")
    assert "Seats free:     0" in full.out
    assert "No seat is free: all 3 are in use" in full.out

    refused = cli("user", "add", "sitecore\\Dan")
    assert refused.code == 1
    assert "No seat is free for sitecore\\dan: all 3 seats are in use" in refused.err

    five = cli.json("license", "add", FIVE)["license"]
    assert (five["key"], five["seats"], five["expires_at"]) == ("…0005", 5, "2031-06-30T23:59:59Z")
    cli.ok("user", "add", "sitecore\\Dan")

    removed = cli.ok("license", "remove", FIVE)
    assert "The license …0005 is removed." in removed.out
    assert "4 users hold seats, 1 more than licensed" in removed.out
    status = cli.json("status")
    assert (status["seats_licensed"], status["seats_in_use"], status["over_limit_by"]) == (3, 4, 1)
    assert "Nobody may use Avtor until 1 user is removed" in status["advice"]
    assert "OVER LIMIT" in cli.ok("status").out

    cli.ok("user", "remove", " SITECORE\\dan ")
    users = cli.json("user", "list")
    assert users["total"] == 3
    assert [user["display_name"] for user in users["users"]] == [
        "sitecore\\Ann",
        "sitecore\\Bob",
        "sitecore\\Cid",
    ]
    assert {user["assignment"] for user in users["users"]} == {"manual"}
    assert [user["assigned_by"] == "ada" for user in users["users"]] == [True, True, False]
    assert users["users"][2]["assigned_by"].endswith("(avtorlm)")
    [event] = cli.json("events", "--kind", "license_removed")["events"]
    assert (event["subject"], event["seats_licensed_before"], event["seats_licensed_after"]) == (
        "…0005",
        8,
        3,
    )


# --- reading: pages, keys, the report (SQLite) -------------------------------------------------------


def test_user_list_pages_and_keys_are_masked_unless_asked(
    sqlite_cli: Avtorlm, server: LicenseServerProcess
) -> None:
    cli = seeded(sqlite_cli, server, keys=(FIVE,), users=("ann", "bob", "cid"))
    first = cli.ok("user", "list", "--limit", "2")
    assert "ann" in first.out and "bob" in first.out and "cid" not in first.out
    assert "Next page: avtorlm user list --offset 2 --limit 2" in first.out
    rest = cli.json("user", "list", "--limit", "2", "--offset", "2")
    assert (rest["total"], [user["username"] for user in rest["users"]]) == (3, ["cid"])

    masked = cli.ok("license", "list")
    assert "…0005" in masked.out and FIVE not in masked.out
    assert FIVE in cli.ok("license", "list", "--show-keys").out


def test_the_report_lists_every_seat_holder_with_the_installation_as_csv_and_json(
    sqlite_cli: Avtorlm, server: LicenseServerProcess
) -> None:
    cli = seeded(sqlite_cli, server, keys=(THREE,), users=("sitecore\\Ann", "sitecore\\Bob"))
    as_csv = cli.ok("report", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.out)))
    assert [row["display_name"] for row in rows] == ["sitecore\\Ann", "sitecore\\Bob"]
    assert {(row["seats_licensed"], row["seats_in_use"], row["assignment"]) for row in rows} == {
        ("3", "2", "manual")
    }
    assert "2 seat holders, 3 seats licensed" in as_csv.err

    report = cli.ok("report").json()
    assert report["installation_id"] == rows[0]["installation_id"]
    assert [holder["username"] for holder in report["seat_holders"]] == ["sitecore\\ann", "sitecore\\bob"]
    assert report["licenses"][0]["key"] == "…0003"
    assert cli.ok("report", "--show-keys").json()["licenses"][0]["key"] == THREE


FORMULAS = ['=HYPERLINK("http://x","y")', "+1", "-2", "@SUM(A1)", "\tx", "\rx"]


def test_the_csv_report_keeps_spreadsheets_from_running_names_as_formulas(
    sqlite_cli: Avtorlm, server: LicenseServerProcess, tmp_path: Path
) -> None:
    cli = seeded(sqlite_cli, server, keys=(FIVE, THREE), users=("sitecore\\Ann", *FORMULAS[:4]))
    # `user add` and the hosts refuse names with control characters; an older store may hold them.
    store = SqlStore(create_store_engine(cli.env["AVTOR_DATABASE_URL"]))
    try:
        with store.writing() as uow:
            uow.seats.add([Seat(name, name, Assignment.MANUAL, utc_now(), name) for name in FORMULAS[4:]])
            uow.commit()
    finally:
        store.engine.dispose()
    report = tmp_path / "seats.csv"
    with report.open("wb") as written:
        done = subprocess.run(
            [str(AVTORLM), "report", "--format", "csv"], env=cli.env, stdout=written, timeout=60, check=False
        )
    assert done.returncode == 0

    with report.open(encoding="utf-8", newline="") as opened:
        rows = {row["display_name"]: row for row in csv.DictReader(opened)}
    assert sorted(rows) == sorted(["sitecore\\Ann", *("'" + name for name in FORMULAS)])
    assert rows['\'=HYPERLINK("http://x","y")']["username"] == '\'=hyperlink("http://x","y")'
    assert [rows["'" + name]["username"] for name in FORMULAS[1:]] == [
        "'" + name.lower() for name in FORMULAS[1:]
    ]
    assert [rows["'" + name]["assigned_by"] for name in FORMULAS] == ["ada"] * 4 + ["'\tx", "'\rx"]
    for row in rows.values():
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row.values()), row
        assert (row["seats_licensed"], row["seats_in_use"], row["assigned_at"][:2]) == ("8", "7", "20")
    assert rows["sitecore\\Ann"]["username"] == "sitecore\\ann"


def test_events_filter_by_kind_and_time(sqlite_cli: Avtorlm, server: LicenseServerProcess) -> None:
    cli = seeded(sqlite_cli, server, keys=(FIVE,), users=("ann",))
    table = cli.ok("events", "--all").out
    assert [line.split()[1] for line in table.splitlines()[2:]] == [
        "agreement_accepted",
        "license_added",
        "user_added",
    ]
    recent = cli.json("events", "--kind", "user_added", "--kind", "license_added", "--since", "1h")
    assert [event["kind"] for event in recent["events"]] == ["license_added", "user_added"]
    assert cli.json("events", "--until", "2000-01-01")["events"] == []
    assert cli.json("events", "--limit", "1")["events"][0]["subject"] == "ann"


def test_the_default_events_view_counts_refused_starts_and_keeps_every_administrator_change(
    sqlite_cli: Avtorlm, server: LicenseServerProcess
) -> None:
    cli = seeded(sqlite_cli, server, keys=(THREE,), users=("sitecore\\Ann", "sitecore\\Bob", "sitecore\\Cid"))
    refused = refuse_starts(cli, ["sitecore\\Dan"] * 100 + ["sitecore\\Eve"] * 30)
    first, last = format_instant(refused[0]), format_instant(refused[-1])

    shown = cli.ok("events").out
    rows = shown.split("\n\n")[0].splitlines()[2:]
    assert [row.split()[1] for row in rows] == ["agreement_accepted", "license_added"] + ["user_added"] * 3
    assert "seat_refused" not in shown
    assert "Refused starts, counted per editor:" in shown
    assert "sitecore\\eve: refused 30 times between " in shown
    assert f"sitecore\\dan: refused 100 times between {first} and " in shown
    assert f" and {last} (no_seats)" in shown

    document = cli.json("events")
    assert [event["kind"] for event in document["events"]] == ["agreement_accepted", "license_added"] + [
        "user_added"
    ] * 3
    assert [(tally["editor"], tally["count"]) for tally in document["refused_starts"]] == [
        ("sitecore\\eve", 30),
        ("sitecore\\dan", 100),
    ]
    # Filters show every event one by one.
    assert len(cli.json("events", "--all")["events"]) == 135
    assert len(cli.json("events", "--kind", "seat_refused", "--since", "1d", "--all")["events"]) == 130
    assert [event["subject"] for event in cli.json("events", "--kind", "seat_refused")["events"]][-1] == (
        "sitecore\\eve"
    )


def refuse_starts(cli: Avtorlm, editors: list[str]) -> list[datetime]:
    """Each editor's start, one after the other, refused for want of a seat; when each was refused."""
    store = SqlStore(create_store_engine(cli.env["AVTOR_DATABASE_URL"]))
    moments = []
    try:
        for number, editor in enumerate(editors):
            moments.append(utc_now())
            request = EnrolmentRequest(editor.lower(), editor, request_id=f"start-{number}")
            [decision] = enrol_editors([request], store, moments[-1], GRACE)
            assert decision.outcome is Outcome.NO_SEATS
    finally:
        store.engine.dispose()
    return moments


def test_changes_name_the_login_of_the_process_and_the_name_given_with_by(
    sqlite_cli: Avtorlm, server: LicenseServerProcess
) -> None:
    login = pwd.getpwuid(os.geteuid()).pw_name
    cli = Avtorlm({**sqlite_cli.env, "LOGNAME": "mallory", "USER": "mallory", "LNAME": "mallory"})
    cli.ok("eula", "accept", "--by", "Ada Admin")
    seeded(cli, server, keys=(FIVE,))
    cli.ok("user", "add", "sitecore\\ann")
    cli.ok("user", "add", "sitecore\\bob", "--by", 'Jane "JJ" Admin')
    cli.ok("user", "remove", "sitecore\\ann", "--by", "Jane Admin")

    events = cli.json("events", "--all")["events"]
    assert [(event["kind"], event["actor"]) for event in events] == [
        ("agreement_accepted", f'{login} (avtorlm) for "Ada Admin"'),
        ("license_added", "ada"),
        ("user_added", f"{login} (avtorlm)"),
        ("user_added", f'{login} (avtorlm) for "Jane \\"JJ\\" Admin"'),
        ("user_removed", f'{login} (avtorlm) for "Jane Admin"'),
    ]
    assert cli.json("eula", "show")["accepted"]["accepted_by"] == "Ada Admin"
    [bob] = cli.json("user", "list")["users"]
    assert bob["assigned_by"] == f'{login} (avtorlm) for "Jane \\"JJ\\" Admin"'
    assert "mallory" not in cli.ok("events", "--all").out
    for name in ("", "   ", "x" * 101, "tab\there"):
        wrong = cli("user", "add", "sitecore\\cid", "--by", name)
        assert (wrong.code, "is not a name of 1 to 100 printable characters" in wrong.err) == (2, True)


# --- bad input: refused with a sentence, nothing changed -----------------------------------------------


def test_an_unknown_or_unusable_key_is_refused_and_nothing_is_added(
    sqlite_cli: Avtorlm, server: LicenseServerProcess
) -> None:
    cli = seeded(sqlite_cli, server)
    unknown = cli("license", "add", UNKNOWN)
    assert unknown.code == 1
    assert (
        "The license service refused the key: No license with this key exists. The key was not added."
        in unknown.err
    )
    expired = cli("license", "add", EXPIRED)
    assert (expired.code, "reports this key as expired" in expired.err) == (1, True)
    malformed = cli("license", "add", "not a key!")
    assert (malformed.code, "check that you pasted only the key" in malformed.err) == (1, True)
    assert cli("license", "remove", UNKNOWN).err.strip() == (
        "No license with the key …0000 has been added: nothing was removed."
    )
    assert "add it first" in cli("license", "refresh", UNKNOWN).err
    as_json = cli("license", "add", UNKNOWN, "--json")
    assert (as_json.code, as_json.json()["ok"]) == (1, False)
    assert cli.json("license", "list")["licenses"] == []


def test_an_unknown_user_or_a_name_too_long_is_refused_and_nothing_changes(
    sqlite_cli: Avtorlm, server: LicenseServerProcess
) -> None:
    cli = seeded(sqlite_cli, server, keys=(THREE,))
    unknown = cli("user", "remove", "sitecore\\nobody")
    assert (unknown.code, unknown.err.strip()) == (
        1,
        "sitecore\\nobody holds no seat: check the name in the list of users.",
    )
    too_long = cli("user", "add", "x" * 300)
    assert too_long.code == 1
    assert "the user name is 300 characters long; at most 256 are allowed" in too_long.err
    control = cli("user", "add", "bob\tsmith")
    assert (control.code, "control character U+0009" in control.err) == (1, True)
    assert cli.json("user", "list")["total"] == 0


@pytest.mark.parametrize(
    "arguments",
    [
        (),
        ("frobnicate",),
        ("license", "refresh"),
        ("user", "list", "--limit", "0"),
        ("events", "--since", "last tuesday"),
        ("eula", "accept"),
    ],
)
def test_wrong_usage_exits_2_with_the_usage(sqlite_cli: Avtorlm, arguments: tuple[str, ...]) -> None:
    answer = sqlite_cli(*arguments)
    assert answer.code == 2
    assert "usage: avtorlm" in answer.err


def test_a_wrong_setting_exits_2_naming_the_variable(sqlite_cli: Avtorlm) -> None:
    answer = sqlite_cli("status", revalidate_every="soon")
    assert answer.code == 2
    assert "AVTOR_REVALIDATE_EVERY" in answer.err


# --- a store, Redis or license service that cannot be used ------------------------------------------


def test_a_store_that_cannot_be_reached_is_named_without_its_password(server: LicenseServerProcess) -> None:
    cli = installation(f"postgresql://avtor:s3cret@127.0.0.1:{free_port()}/avtor", server)
    answer = cli("license", "add", FIVE)
    assert answer.code == 1
    assert "The store at postgresql+psycopg://avtor:***@127.0.0.1:" in answer.err
    assert "Check AVTOR_DATABASE_URL" in answer.err
    assert "s3cret" not in answer.text


def test_a_store_not_created_or_at_an_unknown_schema_says_what_to_do(
    tmp_path: Path, server: LicenseServerProcess
) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'avtor.sqlite3'}"
    cli = installation(url, server)
    missing = cli("status")
    assert (missing.code, "run `avtorlm migrate` to create it" in missing.err) == (1, True)
    assert not (tmp_path / "data" / "avtor.sqlite3").exists()

    create_store_engine(url).dispose()
    (tmp_path / "data" / "avtor.sqlite3").touch()
    empty = cli("status")
    assert (empty.code, "has no Avtor tables yet: run `avtorlm migrate`" in empty.err) == (1, True)
    assert "is migrated from revision none" in cli.ok("migrate").out

    engine = create_store_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    engine.dispose()
    newer = cli("user", "list")
    assert newer.code == 1
    assert "which this version of the manager does not know" in newer.err


def test_a_refresh_names_redis_without_its_password_when_it_cannot_be_reached(
    sqlite_cli: Avtorlm, server: LicenseServerProcess
) -> None:
    cli = seeded(sqlite_cli, server, keys=(FIVE,))
    answer = cli("license", "refresh", FIVE, redis_url=f"redis://:s3cret@127.0.0.1:{free_port()}/0")
    assert answer.code == 1
    assert "Redis at redis://:***@127.0.0.1:" in answer.err
    assert "nothing was sent to the workers" in answer.err
    assert "s3cret" not in answer.text


def test_a_refresh_that_no_worker_answers_says_which_worker_to_start(
    sqlite_cli: Avtorlm, server: LicenseServerProcess, redis_url: str
) -> None:
    cli = seeded(sqlite_cli, server, keys=(FIVE,))
    answer = cli("license", "refresh", "--all", "--timeout", "1", redis_url=redis_url)
    assert answer.code == 1
    assert "No worker answered within 1 s" in answer.err
    assert "celery -A worker worker -Q avtor.admin" in answer.err
    # The good message is the last word: no traceback of a result left pending at exit.
    assert "Traceback" not in answer.err and "Exception ignored" not in answer.err


def test_adding_a_key_while_the_license_service_is_unreachable_is_refused_for_now(
    sqlite_cli: Avtorlm, server: LicenseServerProcess
) -> None:
    cli = seeded(sqlite_cli, server)
    answer = cli("license", "add", FIVE, "--json", license_server_url=f"http://127.0.0.1:{free_port()}")
    assert answer.code == 1
    message = answer.json()["message"]
    assert "could not be validated" in message and "try again in a few minutes" in message


# --- refresh through Redis and a real admin worker ----------------------------------------------------


def test_a_refresh_runs_on_the_admin_worker_and_picks_up_the_vendors_change(
    postgres: PostgresServer, server: LicenseServerProcess, redis_url: str
) -> None:
    engine = migrated_engine(postgres.create_database("cli_refresh"))
    store_url = engine.url.render_as_string(hide_password=False)
    engine.dispose()
    cli = seeded(installation(store_url, server, redis_url), server, keys=(FIVE,))
    worker = CeleryProcess.worker(
        cli.env, "cli-admin", queues="avtor.admin", concurrency=1, loglevel="DEBUG"
    ).start()
    try:
        server.put_key(FIVE, seats=12)
        refreshed = cli.ok("license", "refresh", FIVE, "--by", "Jane Admin")
        assert refreshed.out.splitlines() == [
            "The license …0005 is verified: 12 seats until 2031-06-30T23:59:59Z.",
            "Seats: 12 licensed, 0 in use, 12 free.",
        ]
        every = cli.json("license", "refresh", "--all")
        assert [check["outcome"] for check in every["checked"]] == ["verified"]

        queued = cli.json("license", "refresh", "--all", "--no-wait")
        result = celery_client(redis_url).AsyncResult(queued["task_id"]).get(timeout=60)
        assert result["ok"] and result["seats_licensed"] == 12
        # The workers are told the license's id and who asks; at DEBUG Celery logs both.
        assert "license_id" in worker.log() and "Jane Admin" in worker.log()
        assert FIVE not in worker.log()
    finally:
        worker.cleanup()


# --- development mode and the vendor's key ---------------------------------------------------------


def test_status_shows_development_mode_when_it_is_on_and_only_then(sqlite_cli: Avtorlm) -> None:
    on = sqlite_cli.ok("status")
    assert on.out.startswith("DEVELOPMENT MODE (AVTOR_DEVELOPMENT_MODE=1)")
    assert sqlite_cli.json("status")["development_mode"] is True
    production = {"development_mode": "0", "license_server_public_key": ""}
    off = sqlite_cli("status", **production)
    assert off.code == 0, off.text
    assert "DEVELOPMENT MODE" not in off.text
    assert sqlite_cli("status", "--json", **production).json()["development_mode"] is False


def test_adding_a_key_in_development_mode_says_so(sqlite_cli: Avtorlm, server: LicenseServerProcess) -> None:
    cli = seeded(sqlite_cli, server)
    added = cli.ok("license", "add", THREE)
    assert "DEVELOPMENT MODE (AVTOR_DEVELOPMENT_MODE=1)" in added.err


@pytest.mark.parametrize("command", [("license", "add", FIVE), ("license", "refresh", FIVE)])
def test_without_the_vendors_public_key_commands_that_call_the_service_refuse_and_name_the_variable(
    sqlite_cli: Avtorlm, server: LicenseServerProcess, command: tuple[str, ...]
) -> None:
    cli = seeded(sqlite_cli, server)
    server.forget_validations()
    refused = cli(*command, development_mode="0", license_server_public_key="")
    assert refused.code == 2, refused.text
    assert "AVTOR_LICENSE_SERVER_PUBLIC_KEY is not set" in refused.err
    assert "AVTOR_DEVELOPMENT_MODE=1" in refused.err
    assert server.validations() == []
    assert cli.json("license", "list")["licenses"] == []


def test_the_development_key_outside_development_mode_is_refused_before_the_service_is_asked(
    sqlite_cli: Avtorlm, server: LicenseServerProcess
) -> None:
    cli = seeded(sqlite_cli, server)
    server.forget_validations()
    refused = cli("license", "add", FIVE, development_mode="0")
    assert refused.code == 2
    assert "AVTOR_LICENSE_SERVER_PUBLIC_KEY" in refused.err
    assert "is the development license server's key" in refused.err
    assert server.validations() == []


def test_a_license_service_over_plain_http_off_this_machine_is_refused(sqlite_cli: Avtorlm) -> None:
    refused = sqlite_cli(
        "status",
        development_mode="0",
        license_server_public_key="",
        license_server_url="http://licensing.example.com",
    )
    assert refused.code == 2
    assert "AVTOR_LICENSE_SERVER_URL (got 'http://licensing.example.com'): is plain HTTP" in refused.err
