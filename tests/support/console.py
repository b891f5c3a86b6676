"""The console as an administrator meets it: `avtorlm serve` as a real process, with everything it needs.

`installation(...)` starts one whole License Manager on loopback: a fresh store, the
development license server, an admin Celery worker (Refresh goes through it), an
enrolment consumer reading the hosts' stream, and `avtorlm serve`; it creates one
administrator. The browser tests, the screenshots and the console benchmark share it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from host_client import Decision, EnrolmentClient
from tests.support.cli import AVTORLM, Avtorlm
from tests.support.consumers import READY, ConsumerProcess
from tests.support.license_server import LicenseServerProcess, license_server
from tests.support.servers import free_port, wait_for_port
from tests.support.stores import migrated_engine
from tests.support.workers import ROOT, CeleryProcess, avtor_environment

ADMIN_NAME = "ada"
ADMIN_PASSWORD = "correct horse battery staple 42"
START_SECONDS = 60.0


class ConsoleProcess:
    """`avtorlm serve --host 127.0.0.1 --port N` as a child process in a session of its own."""

    def __init__(self, env: dict[str, str], port: int | None = None, name: str = "console") -> None:
        self.env = env
        self.port = port or free_port()
        self.name = name
        self.log_path = Path(tempfile.mkstemp(prefix=f"avtor-{name}-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The console's address, without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float | None = START_SECONDS) -> ConsoleProcess:
        """Start it and wait until it answers HTTP (unless `timeout` is None: then `wait_until_up`)."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(AVTORLM), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if timeout is not None:
            self.wait_until_up(timeout)
        return self

    def wait_until_up(self, timeout: float = START_SECONDS) -> None:
        """Wait until it answers HTTP; fail with its log if it exits or does not answer in time."""
        assert self.process is not None, "not started"
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"avtorlm serve exited with {self.process.returncode}:\n{self.log()}")
            with contextlib.suppress(TimeoutError, requests.RequestException):
                wait_for_port(self.port, timeout=0.2)
                requests.get(self.url + "/", timeout=5, allow_redirects=False)
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"avtorlm serve did not answer within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        """What the server printed."""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM; SIGKILL for the whole session if it does not end in time. Returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return self.process.returncode

    def cleanup(self) -> None:
        """Stop it and remove its log."""
        self.stop()
        self.log_path.unlink(missing_ok=True)


def add_administrator(cli: Avtorlm, name: str = ADMIN_NAME, password: str = ADMIN_PASSWORD) -> None:
    """`avtorlm admin add NAME --password-stdin`, the password given on standard input."""
    done = subprocess.run(
        [str(AVTORLM), "admin", "add", name, "--password-stdin"],
        input=password + "\n",
        env=cli.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (
        f"avtorlm admin add {name} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    )


@dataclass
class Installation:
    """One running License Manager: its console, workers, license server, store and Redis."""

    console: ConsoleProcess
    license_server: LicenseServerProcess
    redis_url: str
    store_url: str
    cli: Avtorlm
    processes: list[CeleryProcess | ConsumerProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The console's address."""
        return self.console.url

    def enrol(self, username: str, host: str = "cms-test", timeout: float = 30.0) -> Decision:
        """An editor starts on `host`: an entry on the hosts' stream, the decision read back."""
        with EnrolmentClient(self.redis_url) as client:
            return client.enrol(username, timeout=timeout, host=host)

    def logs(self) -> str:
        """The end of every process's log, for a failing test's message."""
        parts = [f"--- console ---\n{self.console.log()[-4000:]}"]
        parts += [f"--- {p.name} ---\n{p.log()[-3000:]}" for p in self.processes]
        parts.append(f"--- license server ---\n{self.license_server.log()[-2000:]}")
        return "\n".join(parts)


@contextlib.contextmanager
def installation(
    store_url: str, redis_url: str, keys: list[dict[str, Any]], *, workers: bool = True
) -> Iterator[Installation]:
    """A whole License Manager on `store_url` and `redis_url` (both empty) with the license server's `keys`.

    `workers=False` leaves out the admin worker and the enrolment consumer (pages only).
    """
    with license_server(keys) as server:
        env = avtor_environment(
            database_url=store_url,
            redis_url=redis_url,
            license_server_url=server.url,
            license_server_public_key=server.public_key,
            license_server_timeout="2s",
            license_server_attempts="2",
        )
        cli = Avtorlm(env)
        migrated_engine(store_url).dispose()
        processes: list[CeleryProcess | ConsumerProcess] = []
        console = ConsoleProcess(env)
        try:
            if workers:
                # The slow starters first, all at once; then wait for each.
                worker = CeleryProcess.worker(env, "admin", queues="avtor.admin", concurrency=1)
                consumer = ConsumerProcess(env, "consumer")
                processes += [worker, consumer]
                worker.start(wait_for=None)
                consumer.start(wait_for=None)
            console.start(timeout=None)
            add_administrator(cli)
            console.wait_until_up()
            for process in processes:
                process.wait_for_log("ready." if isinstance(process, CeleryProcess) else READY)
            yield Installation(console, server, redis_url, store_url, cli, processes)
        finally:
            console.cleanup()
            for process in processes:
                process.cleanup()
