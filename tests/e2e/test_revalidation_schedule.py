"""Scheduled re-validation with real `celery beat` and worker processes and a 3-second interval.

Each license is due every 3 s and beat ticks every second. Two beats run at once,
as they would by mistake; then everything is stopped, runs are missed, and it is
started again.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from adapters.license_service import HttpLicenseService
from adapters.sql import SqlStore
from domain.events import EventKind
from domain.licenses import LicenseStatus
from domain.moments import parse_instant, utc_now
from domain.services.agreement import accept_agreement
from domain.services.licenses import LicenseView, add_license
from domain.services.status import describe_ledger
from tests.support.license_server import LicenseServerProcess, key_entry, license_server
from tests.support.servers import PostgresServer, RedisServer
from tests.support.stores import migrated_engine
from tests.support.workers import CeleryProcess, avtor_environment

EVERY = timedelta(seconds=3)
GRACE = timedelta(days=14)
FIVE, TEN = "AVTR-BEAT-ACTV-0005", "AVTR-BEAT-ACTV-0010"
# Checks of one license are EVERY apart; anything much closer would be a second check of one due time.
CLOSEST_CHECKS = timedelta(seconds=2)


class Schedule:
    """A worker and beats running the schedule against one store and license server."""

    def __init__(self, env: dict[str, str], directory: Path) -> None:
        self.env = env
        self.directory = directory
        self.processes: list[CeleryProcess] = []
        self.ever_started: list[CeleryProcess] = []

    def start(self, beats: int) -> list[CeleryProcess]:
        worker = CeleryProcess.worker(self.env, "revalidation", queues="avtor.admin", concurrency=2).start()
        started = [worker]
        for number in range(beats):
            folder = self.directory / f"beat-{number}"
            folder.mkdir(exist_ok=True)
            started.append(CeleryProcess.beat(self.env, folder).start(wait_for="beat: Starting..."))
        self.processes += started
        self.ever_started += started
        return started

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()


@pytest.fixture(scope="module")
def server() -> Iterator[LicenseServerProcess]:
    with license_server([key_entry(FIVE, 5), key_entry(TEN, 10)]) as running:
        yield running


@pytest.fixture(scope="module")
def store(postgres: PostgresServer, server: LicenseServerProcess) -> Iterator[SqlStore]:
    """A store with the agreement accepted and both licenses added (due in 3 s)."""
    engine = migrated_engine(postgres.create_database("revalidation_schedule"))
    store = SqlStore(engine)
    service = HttpLicenseService(server.url, server.public_key, connect_timeout=1.0, read_timeout=2.0)
    accept_agreement("Ada Admin", store, utc_now(), GRACE)
    for key in (FIVE, TEN):
        add_license(key, "ada", store, service, utc_now(), GRACE, EVERY)
    yield store
    engine.dispose()


@pytest.fixture(scope="module")
def schedule(
    store: SqlStore,
    server: LicenseServerProcess,
    redis_service: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Schedule]:
    redis_service.flush()
    env = avtor_environment(
        redis_url=redis_service.url,
        database_url=store.engine.url.render_as_string(hide_password=False),
        license_server_url=server.url,
        license_server_public_key=server.public_key,
        license_server_timeout="3s",
        license_server_attempts="2",
        revalidate_every="3s",
        revalidate_tick="1s",
    )
    running = Schedule(env, tmp_path_factory.mktemp("beat"))
    yield running
    running.stop()
    for process in running.ever_started:
        process.cleanup()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.2)


def checks_of(server: LicenseServerProcess, key: str) -> list[datetime]:
    return [parse_instant(entry["received_at"]) for entry in server.validations(key)]


def closest(moments: list[datetime]) -> timedelta:
    return min(later - earlier for earlier, later in itertools.pairwise(moments))


def license_view(store: SqlStore, key: str) -> LicenseView:
    [view] = [view for view in describe_ledger(store, utc_now(), GRACE).licenses if view.key == key]
    return view


def test_two_beats_by_mistake_still_check_each_license_once_per_interval(
    schedule: Schedule, server: LicenseServerProcess, store: SqlStore
) -> None:
    # Slow answers, so that a check is still running when the other beat's tick comes.
    server.fail(delay_seconds=1.2)
    server.forget_validations()
    _, first_beat, second_beat = schedule.start(beats=2)
    wait_until(
        lambda: min(len(checks_of(server, key)) for key in (FIVE, TEN)) >= 3, "three checks of each license"
    )
    for key in (FIVE, TEN):
        assert closest(checks_of(server, key)) >= CLOSEST_CHECKS, checks_of(server, key)
    server.heal()
    for beat in (first_beat, second_beat):
        assert "Sending due task revalidate-due-licenses (avtor.admin.revalidate_due)" in beat.log()
    with store.reading() as uow:
        refreshed = uow.events.list(kinds=[EventKind.LICENSE_REFRESHED])
    assert {event.actor for event in refreshed} == {"schedule"}
    assert {event.subject for event in refreshed} == {"…0005", "…0010"}


def test_a_failing_service_is_retried_and_the_status_shows_the_error_while_seats_stay(
    schedule: Schedule, server: LicenseServerProcess, store: SqlStore
) -> None:
    server.fail(fail_with=503)
    wait_until(lambda: license_view(store, FIVE).failed_checks >= 2, "two failed checks in a row")
    view = license_view(store, FIVE)
    assert (view.status, view.seats_granted) == (LicenseStatus.ACTIVE, 5)
    assert view.last_error == (
        "The license could not be verified: the license service answered 503 Service Unavailable."
    )
    server.heal()
    wait_until(
        lambda: license_view(store, FIVE).failed_checks == 0, "a successful check once the service is back"
    )
    assert license_view(store, FIVE).last_error is None


def test_after_a_stop_with_missed_runs_each_license_is_checked_once_then_on_schedule(
    schedule: Schedule, server: LicenseServerProcess, store: SqlStore
) -> None:
    schedule.stop()
    # Everything was down for a month: ten thousand runs were missed.
    with store.writing() as uow:
        for license in uow.licenses.list():
            license.next_check_at = utc_now() - timedelta(days=30)
            uow.licenses.save(license)
        uow.commit()
    server.forget_validations()
    restarted = utc_now()
    schedule.start(beats=1)
    wait_until(
        lambda: min(len(checks_of(server, key)) for key in (FIVE, TEN)) >= 2, "two checks of each license"
    )
    for key in (FIVE, TEN):
        assert closest(checks_of(server, key)) >= CLOSEST_CHECKS, checks_of(server, key)
        last_checked = license_view(store, key).last_checked_at
        assert last_checked is not None and last_checked > restarted
