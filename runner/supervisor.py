"""`scripts/run`: the whole system in the foreground on its embedded default, until Ctrl-C.

It migrates the store, gives the console's first administrator (`admin`) a new
password, starts Redis (unless AVTOR_REDIS_URL names one), the development license
server (unless AVTOR_LICENSE_SERVER_URL names a service), an enrolment consumer, an
admin worker, exactly one beat and the console (`avtorlm serve`); prints where
everything runs; and on Ctrl-C or SIGTERM stops them all, newest first, and exits 0.
If a process stops on its own, the others are stopped and the exit code is 1.

The Redis it starts knows three users with passwords new at each start (see
config/redis_users.py): the consumer, the admin worker and beat connect as
`avtor-worker`; data/run.env gives the command line `avtor-admin` and names the
hosts' URL (`avtor-host`) for the demo and the CMS. The console works as the command
line does, so it connects as `avtor-admin` too (its Refresh goes through the admin
worker); the administrator's name and password are in data/run.env, never on screen.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from types import FrameType

import requests
from sqlalchemy.engine import Engine

from adapters.sql import StoreUnreachable, create_store_engine, migrate
from adapters.sql.access import SqlAccess
from cli.serve import DEFAULT_PORT as DEFAULT_CONSOLE_PORT
from config import Settings, SettingsError, load_settings
from config.redis_users import USER_NAMES, RedisUser, Role, installation_users, new_passwords, url_for
from domain.moments import utc_now
from domain.services.access import add_administrator, set_password
from runner.announcement import (
    HOST_URL_VARIABLE,
    ConsoleSignIn,
    banner,
    console_variables,
    exports,
    spoken,
    write_env_file,
)
from runner.children import Child, ChildFailed
from runner.redis_server import (
    NoRedisServer,
    answers_ping,
    persistence_warnings,
    redis_server_argv,
    redis_server_binary,
    redis_server_version,
    write_users_file,
)

DEFAULT_REDIS_PORT = 6479
DEFAULT_LICENSE_SERVER_PORT = 8470
START_SECONDS = 90.0
# A schedule fast enough to watch: each license is re-validated every 10 s, looked for every second.
DEMO_SCHEDULE = {"AVTOR_REVALIDATE_EVERY": "10s", "AVTOR_REVALIDATE_TICK": "1s"}
ENV_FILE = "run.env"
USERS_FILE = "users.acl"
# The console's first administrator, given a new password at every start (in run.env only).
CONSOLE_ADMIN = "admin"
# Who the store names as having added that administrator.
RUN_ACTOR = "scripts/run"
# The admin worker uses no Celery events, heartbeats or worker-to-worker messages (nor may its Redis user).
WORKER_OPTIONS = ["--loglevel=INFO", "--without-heartbeat", "--without-gossip", "--without-mingle"]


class Stopped(Exception):
    """Ctrl-C or SIGTERM arrived while the system was starting."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the system until it is stopped; return the exit code."""
    options = _parser().parse_args(argv)
    system = System(options)
    signal.signal(signal.SIGINT, system.request_stop)
    signal.signal(signal.SIGTERM, system.request_stop)
    return system.run()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/run",
        description="Run the Avtor License Manager in the foreground: SQLite store, Redis, the development "
        "license server with demo keys, workers, beat and the console. Stop it with Ctrl-C.",
    )
    parser.add_argument(
        "--redis-port",
        type=int,
        default=DEFAULT_REDIS_PORT,
        help=f"port of the Redis started here (default {DEFAULT_REDIS_PORT}); not used with AVTOR_REDIS_URL",
    )
    parser.add_argument(
        "--license-server-port",
        type=int,
        default=DEFAULT_LICENSE_SERVER_PORT,
        help=f"port of the development license server (default {DEFAULT_LICENSE_SERVER_PORT})",
    )
    parser.add_argument(
        "--console-port",
        type=int,
        default=DEFAULT_CONSOLE_PORT,
        help=f"port of the console, avtorlm serve, on 127.0.0.1 (default {DEFAULT_CONSOLE_PORT})",
    )
    parser.add_argument(
        "--demo-schedule",
        action="store_true",
        help="re-validate every license every 10 s (beat ticks every second), to watch the schedule work",
    )
    return parser


class System:
    """The processes of one local run, started in order and stopped in reverse."""

    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.children: list[Child] = []
        self.stop_signal: int | None = None
        self.hurry = False
        self.env = {name: value for name, value in os.environ.items()}
        self.env["PYTHONUNBUFFERED"] = "1"
        self.starts_redis = False
        self.starts_license_server = False
        # The Redis URL of each kind of process (with its user's password when Redis is started here).
        self.redis_urls: dict[Role, str] = {}
        self.redis_users: list[RedisUser] = []
        self.redis_address = ""
        self.env_file: Path | None = None
        self.notes: list[str] = []
        self.console: ConsoleSignIn | None = None

    def request_stop(self, number: int, _frame: FrameType | None) -> None:
        """Signal handler: the first signal stops the system in order, a second one hurries it."""
        if self.stop_signal is not None:
            self.hurry = True
            _say("Stopping at once.")
            return
        self.stop_signal = number
        if self.children:
            _say("\nStopping the Avtor License Manager (Ctrl-C again to stop at once) ...")

    def run(self) -> int:
        """Start everything, watch it, stop it; 0 after a requested stop, 1 after a failure."""
        code = 0
        try:
            settings = self._settings()
            self._start(settings)
            self._announce(settings)
            failed = self._watch()
            if failed is not None:
                status = failed.exit_code()
                _say(f"The {failed.name} stopped unexpectedly (exit code {status}).\n{failed.tail()}")
                code = 1
        except Stopped:
            pass
        except (ChildFailed, NoRedisServer, StoreUnreachable, SettingsError, RefusedStart) as error:
            _say(str(error))
            code = 1
        finally:
            self._stop_all()
        if code == 0:
            _say("The Avtor License Manager has stopped.")
        return code

    # --- starting -------------------------------------------------------------------------------

    def _settings(self) -> Settings:
        """The settings of the run: the environment's, plus what the run starts or was told by flags."""
        settings = load_settings()
        overrides = dict(DEMO_SCHEDULE) if self.options.demo_schedule else {}
        if "redis_url" not in settings.model_fields_set:
            overrides["AVTOR_REDIS_URL"] = f"redis://127.0.0.1:{self.options.redis_port}/0"
        if "license_server_url" not in settings.model_fields_set:
            overrides["AVTOR_LICENSE_SERVER_URL"] = f"http://127.0.0.1:{self.options.license_server_port}"
            # The development license server signs with a key whose private half ships with it:
            # only a process in development mode trusts it, and every such process says so.
            overrides["AVTOR_DEVELOPMENT_MODE"] = "1"
        self.env.update(overrides)
        self.starts_redis = "AVTOR_REDIS_URL" in overrides
        self.starts_license_server = "AVTOR_LICENSE_SERVER_URL" in overrides
        if self.starts_redis:
            # Each process is given the URL of its own user; none gets Redis without one.
            address = self.redis_address = self.env.pop("AVTOR_REDIS_URL")
            self.redis_users = installation_users(new_passwords())
            self.redis_urls = {
                user.role: url_for(address, user.name, user.password) for user in self.redis_users
            }
            overrides["AVTOR_REDIS_URL"] = self.redis_urls[Role.WORKER]
        else:
            # The administrator's own Redis: every process uses the URL given (and hosts theirs, if given).
            given = overrides.get("AVTOR_REDIS_URL", settings.redis_url.get_secret_value())
            self.redis_urls = {Role.WORKER: given, Role.ADMIN: given}
            if self.env.get(HOST_URL_VARIABLE):
                self.redis_urls[Role.HOST] = self.env[HOST_URL_VARIABLE]
        return load_settings(
            None, **{name.removeprefix("AVTOR_").lower(): value for name, value in overrides.items()}
        )

    def _start(self, settings: Settings) -> None:
        self._migrate(settings)
        self._check_stop()
        if self.starts_redis:
            self._start_redis(settings)
        else:
            self._check_own_redis(settings)
        self._check_stop()
        if self.starts_license_server:
            self._start_license_server(settings)
        self._check_stop()
        # The workers and the console start side by side; the console is stopped first.
        _refuse_busy_port(self.options.console_port, "--console-port", "the console")
        workers = self._launch_workers(settings)
        console = self._launch_console(settings)
        self._wait_for_workers(settings, workers)
        self._wait_for_console(console)

    def _migrate(self, settings: Settings) -> None:
        engine = create_store_engine(settings.store_url.get_secret_value())
        try:
            before, after = migrate(engine)
            password = console_administrator(engine)
        finally:
            engine.dispose()
        change = "up to date" if before == after else f"migrated from revision {before or 'none'}"
        _say(f"Store {settings.store_url}: {change} (schema revision {after}).")
        url = f"http://127.0.0.1:{self.options.console_port}/"
        self.console = ConsoleSignIn(url, CONSOLE_ADMIN, password)

    def _start_redis(self, settings: Settings) -> None:
        port = self.options.redis_port
        _refuse_busy_port(port, "--redis-port", "Redis")
        directory = self._data_dir(settings) / "redis"
        directory.mkdir(parents=True, exist_ok=True)
        binary = redis_server_binary()
        # Only these users, with this start's passwords: the default user is off.
        users = write_users_file(directory / USERS_FILE, self.redis_users, redis_server_version(binary))
        argv = redis_server_argv(binary, port, directory.resolve(), users.resolve())
        redis = self._launch(Child("Redis server", argv, self.env, self._log(settings, "redis"), 20.0))
        url = settings.redis_url.get_secret_value()
        redis.wait_until(lambda: answers_ping(url), START_SECONDS, self._stopping)
        self._check_stop()
        self.notes.append(
            f"Redis            {self.redis_address}  (started here: append-only, noeviction, in {directory})"
        )
        self.notes.append(
            f"Redis users      {USER_NAMES[Role.WORKER]} (workers, beat), {USER_NAMES[Role.ADMIN]} "
            f"(avtorlm), {USER_NAMES[Role.HOST]} (hosts): new passwords each start, the default user off"
        )

    def _check_own_redis(self, settings: Settings) -> None:
        where = str(settings.redis_url)
        if not answers_ping(settings.redis_url.get_secret_value()):
            raise RefusedStart(
                f"Redis at {where} (AVTOR_REDIS_URL) cannot be reached: start it, or unset AVTOR_REDIS_URL "
                "to let scripts/run start a Redis of its own."
            )
        for warning in persistence_warnings(settings.redis_url.get_secret_value()):
            _say(f"WARNING: Redis at {where}: {warning}.")
        self.notes.append(f"Redis            {where}  (yours, from AVTOR_REDIS_URL)")

    def _start_license_server(self, settings: Settings) -> None:
        port = self.options.license_server_port
        _refuse_busy_port(port, "--license-server-port", "the development license server")
        # Its keys live in the data folder, so the seats the vendor added and the demo keys'
        # expiry survive a restart, as the store's record of them does.
        state = settings.data_dir / "license-server-keys.json"
        argv = [
            *(sys.executable, "-m", "licenseserver", "--host", "127.0.0.1", "--port", str(port)),
            *("--state", str(state)),
        ]
        server = self._launch(
            Child("development license server", argv, self.env, self._log(settings, "license-server"), 10.0)
        )
        server.wait_until(
            lambda: _public_key(settings.license_server_url) is not None, START_SECONDS, self._stopping
        )
        self._check_stop()
        public_key = _public_key(settings.license_server_url)
        assert public_key is not None
        self.env["AVTOR_LICENSE_SERVER_PUBLIC_KEY"] = public_key
        self.notes.append(
            f"license server   {settings.license_server_url}  (development server with the demo keys; "
            f"switches under /_dev, see docs/license-server.md)"
        )

    def _launch_workers(self, settings: Settings) -> list[Child]:
        workers = self._env_for(Role.WORKER)
        consumer = Child(
            "enrolment consumer",
            [sys.executable, "-m", "worker.enrolment_consumer"],
            workers,
            self._log(settings, "enrolment-consumer"),
        )
        celery = [sys.executable, "-m", "celery", "-A", "worker"]
        admin = Child(
            "admin worker",
            [*celery, "worker", "-Q", "avtor.admin", "-n", "admin@%h", "-c", "2", *WORKER_OPTIONS],
            workers,
            self._log(settings, "worker-admin"),
        )
        schedule = self._data_dir(settings) / "celerybeat-schedule"
        beat = Child(
            "beat",
            [*celery, "beat", "--loglevel=INFO", "-s", str(schedule)],
            workers,
            self._log(settings, "beat"),
        )
        return [self._launch(child) for child in (consumer, admin, beat)]

    def _wait_for_workers(self, settings: Settings, workers: list[Child]) -> None:
        consumer, admin, beat = workers
        for child, ready in ((consumer, " is ready"), (admin, " ready."), (beat, "beat: Starting...")):
            child.wait_until(partial(_logged, child, ready), START_SECONDS, self._stopping)
            self._check_stop()
        self.notes.append(
            f"enrolment        avtor-enrolment-consumer on avtor:enrol:requests  (log {consumer.log_path})"
        )
        self.notes.append(f"admin worker     queue avtor.admin  (log {admin.log_path})")
        every, tick = spoken(settings.revalidate_every), spoken(settings.revalidate_tick)
        self.notes.append(
            f"beat             exactly one: licenses re-validated every {every}, looked at every {tick}  "
            f"(log {beat.log_path})"
        )

    def _launch_console(self, settings: Settings) -> Child:
        # It works as the command line does: the admin user's Redis URL, for Refresh through the admin worker.
        avtorlm = Path(sys.executable).with_name("avtorlm")
        program = [str(avtorlm)] if avtorlm.exists() else [sys.executable, "-m", "cli.main"]
        argv = [*program, "serve", "--host", "127.0.0.1", "--port", str(self.options.console_port)]
        return self._launch(
            Child("console", argv, self._env_for(Role.ADMIN), self._log(settings, "console"), 15.0)
        )

    def _wait_for_console(self, console: Child) -> None:
        assert self.console is not None
        url = self.console.url
        console.wait_until(lambda: _answers_sign_in(url), START_SECONDS, self._stopping)
        self._check_stop()
        self.notes.append(f"console          {url}  (avtorlm serve; log {console.log_path})")

    def _env_for(self, role: Role) -> dict[str, str]:
        """The environment of a process of `role`: the run's, with the Redis URL of its user."""
        return {**self.env, "AVTOR_REDIS_URL": self.redis_urls[role]}

    def _launch(self, child: Child) -> Child:
        self.children.append(child)
        return child.start()

    # --- running --------------------------------------------------------------------------------

    def _announce(self, settings: Settings) -> None:
        data_dir = self._data_dir(settings)
        self.env_file = data_dir / ENV_FILE
        # Another shell is the administrator's: avtorlm connects as the admin user; hosts' URL beside it.
        shell = self._env_for(Role.ADMIN)
        host_url = self.redis_urls.get(Role.HOST)
        if host_url:
            shell[HOST_URL_VARIABLE] = host_url
        console = self.console
        assert console is not None
        write_env_file(self.env_file, exports(shell, data_dir), console_variables(console))
        _say(
            banner(
                settings,
                self.notes,
                self.env_file,
                exports(shell, data_dir, shown=True),
                host_url=host_url if self.starts_redis else None,
                console=console,
            )
        )

    def _watch(self) -> Child | None:
        """Wait for a stop request; return the child that stopped on its own, if one did."""
        while not self._stopping():
            for child in self.children:
                if child.exit_code() is not None:
                    return child
            time.sleep(0.2)
        return None

    # --- stopping -------------------------------------------------------------------------------

    def _stopping(self) -> bool:
        return self.stop_signal is not None

    def _check_stop(self) -> None:
        if self._stopping():
            raise Stopped()

    def _stop_all(self) -> None:
        for child in reversed(self.children):
            if child.exit_code() is None:
                _say(f"  stopping the {child.name} ...")
            child.stop(lambda: self.hurry)
        if self.env_file is not None:
            with contextlib.suppress(FileNotFoundError):
                self.env_file.unlink()

    def _data_dir(self, settings: Settings) -> Path:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return settings.data_dir

    def _log(self, settings: Settings, name: str) -> Path:
        return self._data_dir(settings) / "logs" / f"{name}.log"


class RefusedStart(Exception):
    """Something the run needs is missing; the message says what to do."""


def _refuse_busy_port(port: int, option: str, what: str) -> None:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise RefusedStart(
                f"Port {port} on 127.0.0.1 is in use, so {what} cannot listen there: stop what uses it "
                f"(another scripts/run?) or choose another port with {option}."
            ) from None


def _logged(child: Child, text: str) -> bool:
    return text in child.log_text()


def console_administrator(engine: Engine) -> str:
    """Give the console's first administrator a new password, adding them if missing; return it."""
    from adapters.passwords import Argon2Passwords  # argon2 is loaded only where passwords are hashed

    access, hasher, now = SqlAccess(engine), Argon2Passwords(), utc_now()
    password = secrets.token_urlsafe(18)
    if access.administrator(CONSOLE_ADMIN) is None:
        add_administrator(CONSOLE_ADMIN, password, RUN_ACTOR, access, hasher, now)
    else:
        # The password of an earlier run was in its run.env, which is gone: this one replaces it.
        set_password(CONSOLE_ADMIN, password, access, hasher, now)
    return password


def _answers_sign_in(url: str) -> bool:
    try:
        return requests.get(url + "sign-in", timeout=(1.0, 2.0), allow_redirects=False).status_code == 200
    except requests.RequestException:
        return False


def _public_key(url: str) -> str | None:
    try:
        response = requests.get(url + "/_dev/public-key", timeout=(1.0, 2.0))
        response.raise_for_status()
        return str(response.json()["public_key"])
    except (requests.RequestException, ValueError, KeyError):
        return None


def _say(text: str) -> None:
    print(text, flush=True)
