"""Fixtures for end-to-end tests: real worker processes on real Redis and real stores."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.servers import RedisServer
from tests.support.workers import CeleryProcess, avtor_environment


class Fleet:
    """Worker processes started by a test, all stopped at its end."""

    def __init__(self, store_url: str, redis_url: str, **settings: str) -> None:
        self.env = avtor_environment(
            database_url=store_url,
            redis_url=redis_url,
            license_server_url="http://127.0.0.1:9",
            **settings,
        )
        self.processes: list[CeleryProcess] = []

    def worker(
        self,
        name: str,
        concurrency: int | None = None,
        queues: str = "avtor.enrolment,avtor.admin",
        pool: str | None = None,
        extra: tuple[str, ...] = (),
    ) -> CeleryProcess:
        """Start a worker node (the app's pool and concurrency unless given) and wait until it is ready."""
        process = CeleryProcess.worker(self.env, name, queues, concurrency, *extra, pool=pool)
        self.processes.append(process)
        return process.start()

    def stop(self) -> None:
        for process in self.processes:
            process.cleanup()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.log()[-3000:]}" for p in self.processes)


@pytest.fixture
def redis_url(redis_service: RedisServer) -> str:
    """This run's Redis database, emptied for the test."""
    redis_service.flush()
    return redis_service.url


@pytest.fixture
def fleet(store_url: str, redis_url: str) -> Iterator[Fleet]:
    """Start workers with `fleet.worker(name)`; they are stopped after the test."""
    fleet = Fleet(store_url, redis_url, visibility_timeout="5s")
    yield fleet
    fleet.stop()
