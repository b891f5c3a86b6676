"""The host's Redis user, made by the guide's rule on a real Redis: the host client works under it,
and it reaches nothing else."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from host_client import REQUESTS_STREAM, EnrolmentClient, EnrolmentTimeout, decision_key, enrol
from tests.support.host_redis import CONTRACT_RULE, a_decision, guide_acl_rule, host_user
from tests.support.servers import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
def admin(redis_service: RedisServer) -> Iterator[redis.Redis]:
    """The manager's side: the default user, on this run's database, emptied."""
    redis_service.flush()
    client = redis.Redis.from_url(redis_service.url)
    yield client
    client.close()


@pytest.fixture
def host_url(redis_service: RedisServer) -> Iterator[str]:
    with host_user(redis_service.url) as url:
        yield url




def answer_when_sent(
    admin: redis.Redis, ignore: frozenset[str] = frozenset(), **changes: object
) -> threading.Thread:
    """Play the manager once: wait for a new entry, then write its decision and remove the entry."""

    def answer() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for entry_id, fields in admin.xrange(REQUESTS_STREAM) or []:
                request_id = _text((fields or {}).get(b"request_id"))
                if entry_id is not None and request_id not in ignore:
                    admin.rpush(decision_key(request_id), json.dumps(a_decision(request_id, **changes)))
                    admin.xdel(REQUESTS_STREAM, entry_id)
                    return
            time.sleep(0.01)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    return thread


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def errors_counted(admin: redis.Redis) -> int:
    """Every error reply the server has sent since it started (INFO errorstats)."""
    stats = admin.info("errorstats")
    return sum(int(value["count"]) for value in stats.values() if isinstance(value, dict))


def test_the_guide_gives_the_host_user_the_contracts_rule_exactly() -> None:
    assert guide_acl_rule() == ("avtor-host", CONTRACT_RULE)


@pytest.mark.parametrize("protocol", [2, 3])
def test_the_host_client_enrols_and_reads_decisions_under_the_host_user_without_a_refused_command(
    admin: redis.Redis, host_url: str, protocol: int
) -> None:
    errors_before = errors_counted(admin)
    url = f"{host_url}?protocol={protocol}"
    with EnrolmentClient(url) as client:
        assert client.redis.ping()
        request_id = client.send("sitecore\\Bob", host="cms-prod-1", occurred_at="2026-11-30T09:12:00Z")
        assert client.peek(request_id) is None
        admin.rpush(decision_key(request_id), json.dumps(a_decision(request_id)))
        assert client.peek(request_id) == a_decision(request_id)
        assert client.decision(request_id, timeout=5) == a_decision(request_id)
        assert client.peek(request_id) is None

        answering = answer_when_sent(
            admin, frozenset({request_id}), allowed=False, outcome="no_seats", message="No seat is free."
        )
        refused = client.enrol("sitecore\\Cid", timeout=10)
        answering.join()
        assert (refused["allowed"], refused["outcome"]) == (False, "no_seats")
    # Nothing the client sent, on connecting or after, was refused (no CLIENT SETINFO, for one).
    assert errors_counted(admin) == errors_before
    fields = [entry[1] for entry in admin.xrange(REQUESTS_STREAM) or []]
    assert fields == [
        {
            b"request_id": request_id.encode(),
            b"username": b"sitecore\\Bob",
            b"occurred_at": b"2026-11-30T09:12:00Z",
            b"host": b"cms-prod-1",
        }
    ]


def test_enrol_finds_the_hosts_redis_before_the_managers(
    admin: redis.Redis, host_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AVTOR_HOST_REDIS_URL", host_url)
    monkeypatch.setenv("AVTOR_REDIS_URL", "redis://127.0.0.1:9/0")  # nothing listens there
    answering = answer_when_sent(admin)
    decision = enrol("sitecore\\Bob", "start-1", timeout=10, host="cms-prod-1")
    answering.join()
    assert decision == a_decision("start-1")


def test_a_wait_longer_than_the_connections_read_timeout_ends_as_a_timeout_or_a_decision(
    admin: redis.Redis, host_url: str
) -> None:
    # redis-py 8 reads with a 5 s timeout unless told otherwise: a BLPOP of 5 s or more would
    # fail with its TimeoutError. The client waits in shorter steps, whatever the read timeout.
    with EnrolmentClient(f"{host_url}?socket_timeout=0.6") as client:
        started = time.monotonic()
        with pytest.raises(EnrolmentTimeout):
            client.decision("start-late", timeout=1.5)
        assert 1.4 < time.monotonic() - started < 3

        answering = threading.Timer(
            1.2, lambda: admin.rpush(decision_key("start-later"), json.dumps(a_decision("start-later")))
        )
        answering.start()
        assert client.decision("start-later", timeout=5) == a_decision("start-later")
        answering.join()


REFUSED = [
    ("LPUSH", "avtor.enrolment", "x"),
    ("LPUSH", "avtor.admin", "x"),
    ("BRPOP", "avtor.admin", "0.01"),
    ("LPUSH", "celery", "x"),
    ("GET", "celery-task-meta-0b6a3c52"),
    ("SET", "avtor:enrol:decision:forged", "x"),
    ("DEL", "avtor:enrol:decision:someone-else"),
    ("RPUSH", "avtor:enrol:decision:someone-else", "{}"),
    ("LPOP", "avtor:enrol:decision:someone-else"),
    ("XRANGE", "avtor:enrol:requests", "-", "+"),
    ("XREADGROUP", "GROUP", "avtor-enrolment", "host", "STREAMS", "avtor:enrol:requests", ">"),
    ("XDEL", "avtor:enrol:requests", "0-1"),
    ("XTRIM", "avtor:enrol:requests", "MAXLEN", "0"),
    ("XGROUP", "DESTROY", "avtor:enrol:requests", "avtor-enrolment"),
    ("LRANGE", "avtor:enrol:dead-letters", "0", "-1"),
    ("PUBLISH", "celery.pidbox", "x"),
    ("PUBLISH", "avtor:enrol:requests", "x"),
    ("SUBSCRIBE", "celeryev"),
    ("KEYS", "*"),
    ("SCAN", "0"),
    ("FLUSHDB",),
    ("CONFIG", "GET", "*"),
    ("ACL", "LIST"),
    ("EVAL", "return redis.call('FLUSHDB')", "0"),
    ("CLIENT", "LIST"),
    ("CLIENT", "KILL", "ID", "999999999"),
    ("INFO",),
]


@pytest.mark.parametrize("command", REFUSED, ids=[" ".join(command[:2]) for command in REFUSED])
def test_the_host_user_reaches_nothing_else(host_url: str, command: tuple[str, ...]) -> None:
    # What an attacker with the host's password could try; none of it may run (the refusal comes
    # before the command would, so nothing here can harm the server if the rule were wrong,
    # beyond this run's own database).
    with EnrolmentClient(host_url) as host, pytest.raises(redis.exceptions.NoPermissionError):
        host.redis.execute_command(*command)
