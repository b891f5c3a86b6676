"""The README's run command, end to end: `scripts/run` on free ports, the demo against it, Ctrl-C.

The run starts its own Redis (with the three users of config/redis_users.py and
new passwords), the development license server, the enrolment consumer, an admin
worker, beat and the console; the demo tells the whole story through them (editors
through the hosts' user), and the administrator signs in to the console with the
name and password run.env gives; SIGINT stops everything and nothing of it is left
running. No log, output or answer of the run holds a password or a full license key.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from redis.backoff import NoBackoff
from redis.retry import Retry

from config.redis_users import USER_NAMES, Role
from tests.support.processes import ProcessInfo, descendants, kill_all, still_running
from tests.support.servers import RedisServer, free_port
from tests.support.workers import ROOT, avtor_environment

STARTED = "The Avtor License Manager runs."
# Any full key of the demo's licenses; masked forms (…0005) are what every output shows.
FULL_DEMO_KEY = re.compile(r"AVTR-DEMO-[A-Z]{4}-[A-Z]{4}-\d{4}")
# The commands an administrator types (the banner's example, the demo's transcript) name the key in full.
TYPED_COMMAND = re.compile(r"(\$ |bin/)avtorlm license (add|refresh|remove) AVTR-")
START_SECONDS = 120.0


class Run:
    """`scripts/run` as a subprocess in a session of its own, its output in a file."""

    def __init__(self, directory: Path, *options: str) -> None:
        self.env = avtor_environment(data_dir=str(directory / "data"))
        # As a new user runs it: scripts/run turns development mode on by itself.
        del self.env["AVTOR_DEVELOPMENT_MODE"]
        self.log_path = directory / "run.log"
        self.data = directory / "data"
        self.console_port = free_port()
        self.options = [
            *("--redis-port", str(free_port()), "--license-server-port", str(free_port())),
            *("--console-port", str(self.console_port), *options),
        ]
        self.process: subprocess.Popen[bytes] | None = None
        self.started: list[ProcessInfo] = []

    def start(self) -> Run:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(ROOT / "scripts" / "run"), *self.options],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_SECONDS
        while STARTED not in self.output():
            assert self.process.poll() is None, (
                f"scripts/run exited with {self.process.returncode}:\n{self.output()}"
            )
            assert time.monotonic() < deadline, (
                f"scripts/run did not start in {START_SECONDS} s:\n{self.output()}"
            )
            time.sleep(0.2)
        self.started = descendants(self.process.pid)
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout: float = 90.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def everything(self) -> list[ProcessInfo]:
        """The run's processes as first seen, and the run itself."""
        assert self.process is not None
        return [*self.started, *descendants(self.process.pid)]

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        kill_all(self.started)


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    running = Run(tmp_path, "--demo-schedule").start()
    yield running
    running.cleanup()


def commands(processes: list[ProcessInfo]) -> str:
    return "\n".join(info.command for info in processes)


def run_env(path: Path) -> dict[str, str]:
    """The variables data/run.env exports (its values are plain: URLs of hex passwords)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return dict(line.removeprefix("export ").split("=", 1) for line in lines)


def redis_url_of(info: ProcessInfo) -> str:
    """The AVTOR_REDIS_URL a running process was started with."""
    environ = Path(f"/proc/{info.pid}/environ").read_bytes().split(b"\0")
    [url] = [item.split(b"=", 1)[1].decode() for item in environ if item.startswith(b"AVTOR_REDIS_URL=")]
    return url


def leaks(texts: dict[str, str], secrets: dict[str, str]) -> list[str]:
    """Each line of `texts` that holds a secret or a full demo key, named by its text and what it holds."""
    found = []
    for where, text in texts.items():
        for line in text.splitlines():
            typed = TYPED_COMMAND.search(line) is not None
            held = [what for what, secret in secrets.items() if secret in line]
            held += [f"the key {key}" for key in ([] if typed else FULL_DEMO_KEY.findall(line))]
            found += [f"{where} holds {what}: {line}" for what in held]
    return found


def sign_in(url: str, name: str, password: str) -> tuple[requests.Session, requests.Response]:
    """Sign in to the console through its form, with the form's own CSRF token, as a browser does."""
    browser = requests.Session()
    form = browser.get(url + "sign-in", timeout=30)
    assert form.status_code == 200, form.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None, form.text
    answer = browser.post(
        url + "sign-in",
        data={"name": name, "password": password, "csrf_token": token.group(1)},
        allow_redirects=False,
        timeout=30,
    )
    return browser, answer


def test_the_run_command_runs_the_whole_story_and_ctrl_c_stops_everything(run: Run) -> None:
    started = commands(run.started)
    assert "redis-server" in started and "licenseserver" in started
    assert "-m worker.enrolment_consumer" in started and "-Q avtor.admin" in started
    assert "avtor.enrolment" not in started
    assert started.count("celery -A worker beat") == 1
    assert f"avtorlm serve --host 127.0.0.1 --port {run.console_port}" in started
    assert (run.data / "run.env").exists()
    assert stat.S_IMODE((run.data / "run.env").stat().st_mode) == 0o600

    # Each process has its own Redis user; the command line and the hosts get theirs in run.env.
    exported = run_env(run.data / "run.env")
    assert exported["AVTOR_DEVELOPMENT_MODE"] == "1"
    admin, host = (
        redis.connection.parse_url(exported["AVTOR_REDIS_URL"]),
        redis.connection.parse_url(exported["AVTOR_HOST_REDIS_URL"]),
    )
    assert (admin["username"], host["username"]) == (USER_NAMES[Role.ADMIN], USER_NAMES[Role.HOST])
    workers = [
        info
        for info in run.started
        if "worker.enrolment_consumer" in info.command or "celery -A worker" in info.command
    ]
    assert len({info.pid for info in workers}) >= 3
    for info in workers:
        assert redis.connection.parse_url(redis_url_of(info))["username"] == USER_NAMES[Role.WORKER]
    # The console works as the command line does: as the admin user (Refresh goes through the admin worker).
    [console] = [info for info in run.started if " serve --host " in info.command]
    assert redis_url_of(console) == exported["AVTOR_REDIS_URL"]
    # Its first administrator's name and password are in run.env only; the banner says where.
    console_url = f"http://127.0.0.1:{run.console_port}/"
    assert (exported["CONSOLE_URL"], exported["CONSOLE_ADMIN_NAME"]) == (console_url, "admin")
    console_password = exported["CONSOLE_ADMIN_PASSWORD"]
    assert len(console_password) >= 24
    assert f"Open the console: {console_url}" in run.output()
    assert f"sign in as admin; the password is in {run.data / 'run.env'}" in run.output()
    for password in (admin["password"], host["password"], console_password):
        assert password not in run.output(), "the banner shows a password"
    assert f"{USER_NAMES[Role.HOST]}:***@127.0.0.1:" in run.output()
    nobody = redis.Redis(host="127.0.0.1", port=admin["port"], retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis.AuthenticationError):
        nobody.ping()
    nobody.close()

    demo = subprocess.run(
        [str(ROOT / "scripts" / "demo")], env=run.env, cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    story = demo.stdout
    outputs = {"scripts/demo": demo.stdout + demo.stderr}
    assert demo.returncode == 0, f"{story}\n{demo.stderr}\n--- scripts/run:\n{run.output()}"
    assert "The license …0005 is added: 5 seats until" in story
    assert "demo\\editor-09 starts Avtor: REFUSED (no_seats). No Avtor seat is free: 8 of 8 seats" in story
    assert (
        "REFUSED (over_limit). Avtor cannot be used: 8 users hold seats but the licenses grant only 5"
        in story
    )
    assert "demo\\editor-01 starts Avtor: already_enrolled." in story
    assert "The license …0005 is verified: 8 seats until" in story
    assert "demo\\editor-09 starts Avtor: granted. Seat granted: 6 of 8 seats in use." in story
    assert "last verified moved to" in story and "license_refreshed  schedule" in story

    # The administrator signs in to the console with run.env's name and password and sees the License tab.
    _, refused = sign_in(console_url, "admin", "not the password")
    assert refused.status_code == 401
    browser, answer = sign_in(console_url, exported["CONSOLE_ADMIN_NAME"], console_password)
    assert (answer.status_code, answer.headers.get("location")) == (303, "/"), answer.text
    license_tab = browser.get(console_url + "license", timeout=30, allow_redirects=False)
    assert license_tab.status_code == 200, license_tab.text
    assert "…0005" in license_tab.text and "AVTR-DEMO-ACTV-SEAT-0005" not in license_tab.text

    # As the README shows, the administrator adds users by hand; the demo, run again, still
    # tells its story, counting from the seats it finds.
    environment = {**run.env, **run_env(run.data / "run.env")}

    def avtorlm(*arguments: str) -> str:
        done = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "avtorlm"), *arguments],
            env=environment,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        outputs[f"avtorlm {' '.join(arguments)} ({len(outputs)})"] = done.stdout + done.stderr
        return done.stdout

    for user in json.loads(avtorlm("user", "list", "--all", "--json"))["users"]:
        avtorlm("user", "remove", user["username"])
    for name in ("sitecore\\Bob", "alice", "carol", "dave", "erin"):
        avtorlm("user", "add", name)
    again = subprocess.run(
        [str(ROOT / "scripts" / "demo")], env=run.env, cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert again.returncode == 0, f"{again.stdout}\n{again.stderr}"
    assert "5 users already hold seats (added before the demo); the demo counts from there." in again.stdout
    assert "sitecore\\bob starts Avtor: already_enrolled." in again.stdout
    outputs["scripts/demo, again"] = again.stdout + again.stderr
    for command in (("status",), ("license", "list"), ("events",), ("events", "--all"), ("report",)):
        avtorlm(*command)
    [worker_password] = {redis.connection.parse_url(redis_url_of(info))["password"] for info in workers}

    assert run.process is not None
    run.process.send_signal(signal.SIGINT)
    assert run.wait() == 0, run.output()
    assert "The Avtor License Manager has stopped." in run.output()
    assert still_running(run.everything()) == []
    assert not (run.data / "run.env").exists()
    assert (run.data / "redis" / "appendonlydir").is_dir()
    with pytest.raises(requests.ConnectionError):
        requests.get(console_url + "sign-in", timeout=5)

    # Every log of the run (workers, beat, consumer, console, license server, Redis), its own output
    # and the command line's answers: no password, no full key but in the commands the administrator types.
    logs = {
        str(path.relative_to(run.data)): path.read_text(errors="replace")
        for path in (run.data / "logs").rglob("*")
        if path.is_file()
    }
    assert {"consumer", "worker", "beat", "console", "license"} <= {
        word for name in logs for word in ("consumer", "worker", "beat", "console", "license") if word in name
    }, sorted(logs)
    secrets = {
        f"{USER_NAMES[Role.ADMIN]}'s Redis password": admin["password"],
        f"{USER_NAMES[Role.HOST]}'s Redis password": host["password"],
        f"{USER_NAMES[Role.WORKER]}'s Redis password": worker_password,
        "the console administrator's password": console_password,
    }
    found = leaks({"scripts/run": run.output(), **logs, **outputs}, secrets)
    assert found == [], "\n".join(found)


def test_a_process_that_dies_stops_the_rest_and_the_run_says_which(tmp_path: Path) -> None:
    run = Run(tmp_path).start()
    try:
        [server] = [info for info in run.started if "licenseserver" in info.command]
        os.kill(server.pid, signal.SIGKILL)
        assert run.wait() == 1
        output = run.output()
        assert "The development license server stopped unexpectedly (exit code -9)." in output
        assert "Last lines of" in output and "license-server.log" in output
        assert still_running(run.everything()) == []
    finally:
        run.cleanup()


def test_given_avtor_redis_url_the_run_uses_that_redis_and_leaves_it_running(
    tmp_path: Path, redis_service: RedisServer
) -> None:
    redis_service.flush()
    run = Run(tmp_path)
    run.env["AVTOR_REDIS_URL"] = redis_service.url
    run.start()
    try:
        assert "redis-server" not in commands(run.started)
        output = run.output()
        assert f"Redis            {redis_service.url}  (yours, from AVTOR_REDIS_URL)" in output
        assert f"export AVTOR_REDIS_URL={redis_service.url}" in output
        assert ".venv/bin/avtorlm status" in output and "Watch the whole story: scripts/demo" in output

        assert run.process is not None
        run.process.send_signal(signal.SIGINT)
        assert run.wait() == 0, run.output()
        assert still_running(run.everything()) == []
        assert redis.Redis.from_url(redis_service.url).ping()
    finally:
        run.cleanup()
