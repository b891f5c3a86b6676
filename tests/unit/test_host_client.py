"""The host client's logic: the entry it writes, how it reads decisions, where it finds Redis.

Against an in-memory Redis (fakeredis); tests/integration/test_host_client_acl.py and
tests/e2e/test_host_protocol.py run it against a real Redis and a real consumer.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import fakeredis
import pytest
import redis

from host_client import (
    DEFAULT_REDIS_URL,
    REQUESTS_STREAM,
    EnrolmentClient,
    EnrolmentTimeout,
    MalformedDecision,
    decision_key,
    redact_url,
    redis_url_from_environment,
)
from tests.support.host_redis import a_decision

URL = "redis://avtor-host:s3cret-pw@redis.example:6379/2"




@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def store(server: fakeredis.FakeServer) -> redis.Redis:
    """The manager's side of the in-memory Redis."""
    return fakeredis.FakeRedis(server=server)


@pytest.fixture
def client(server: fakeredis.FakeServer) -> Iterator[EnrolmentClient]:
    with EnrolmentClient(URL, client=fakeredis.FakeRedis(server=server)) as host:
        yield host


def entries(store: redis.Redis) -> list[dict[str, str]]:
    """The stream's entries, oldest first, as text."""
    return [
        {_text(name): _text(value) for name, value in (fields or {}).items()}
        for _, fields in store.xrange(REQUESTS_STREAM) or []
    ]


def _text(value: bytes | str | None) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def test_send_appends_one_entry_with_a_new_uuid_as_request_id(
    client: EnrolmentClient, store: redis.Redis
) -> None:
    request_id = client.send("sitecore\\Bob")
    assert str(uuid.UUID(request_id)) == request_id
    assert entries(store) == [{"request_id": request_id, "username": "sitecore\\Bob"}]


def test_send_writes_the_optional_fields_and_keeps_a_given_request_id(
    client: EnrolmentClient, store: redis.Redis
) -> None:
    started = datetime(2026, 11, 30, 10, 12, tzinfo=timezone(timedelta(hours=1)))
    assert client.send("sitecore\\Bob", "start-42", started, "cms-prod-1") == "start-42"
    client.send("sitecore\\Ann", "start-43", occurred_at="2026-11-30T09:13:00Z")
    assert entries(store) == [
        {
            "request_id": "start-42",
            "username": "sitecore\\Bob",
            "occurred_at": "2026-11-30T09:12:00.000Z",
            "host": "cms-prod-1",
        },
        {"request_id": "start-43", "username": "sitecore\\Ann", "occurred_at": "2026-11-30T09:13:00Z"},
    ]


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        ({"request_id": ""}, "request_id must be 1 to 128"),
        ({"request_id": "x" * 129}, "request_id must be 1 to 128"),
        ({"request_id": "start\n42"}, "printable ASCII"),
        ({"request_id": "stärt-42"}, "printable ASCII"),
        ({"occurred_at": datetime(2026, 11, 30, 9, 12)}, "time zone"),  # noqa: DTZ001
        ({"username": "b" * 9000}, "refuses entries over 8192"),
    ],
)
def test_send_refuses_what_the_manager_could_not_answer_and_writes_nothing(
    client: EnrolmentClient, store: redis.Redis, arguments: dict[str, object], complaint: str
) -> None:
    call = {"username": "sitecore\\Bob", **arguments}
    with pytest.raises(ValueError, match=complaint):
        client.send(**call)  # type: ignore[arg-type]
    assert entries(store) == []


def test_decision_takes_the_decision_from_its_list(client: EnrolmentClient, store: redis.Redis) -> None:
    store.rpush(decision_key("start-42"), json.dumps(a_decision("start-42")))
    assert client.decision("start-42", timeout=1) == a_decision("start-42")
    assert store.exists(decision_key("start-42")) == 0


def test_peek_reads_the_decision_and_leaves_it(client: EnrolmentClient, store: redis.Redis) -> None:
    assert client.peek("start-42") is None
    refused = a_decision("start-42", allowed=False, outcome="no_seats", message="No seat is free.")
    store.rpush(decision_key("start-42"), json.dumps(refused))
    assert client.peek("start-42") == refused
    assert client.peek("start-42") == refused
    assert store.llen(decision_key("start-42")) == 1


def test_enrol_sends_then_waits_under_the_same_request_id(
    client: EnrolmentClient, store: redis.Redis
) -> None:
    # The decision is already there: BLPOP takes it at once.
    store.rpush(decision_key("start-7"), json.dumps(a_decision("start-7")))
    assert client.enrol("sitecore\\Bob", "start-7", timeout=1, host="cms-1")["outcome"] == "granted"
    assert entries(store) == [{"request_id": "start-7", "username": "sitecore\\Bob", "host": "cms-1"}]


def test_no_decision_in_time_is_a_timeout_that_says_the_request_is_still_decided(
    client: EnrolmentClient,
) -> None:
    with pytest.raises(EnrolmentTimeout) as timed_out:
        client.decision("start-9", timeout=0.2)
    text = str(timed_out.value)
    assert "start-9" in text
    assert "stays in the stream avtor:enrol:requests and will still be decided" in text
    assert "redis://avtor-host:***@redis.example:6379/2" in text
    assert "s3cret" not in text
    assert (timed_out.value.request_id, timed_out.value.timeout) == ("start-9", 0.2)
    assert isinstance(timed_out.value, TimeoutError)


@pytest.mark.parametrize("timeout", [0, -1.0])
def test_a_wait_of_no_time_is_refused_rather_than_forever(client: EnrolmentClient, timeout: float) -> None:
    with pytest.raises(ValueError, match="more than 0 seconds"):
        client.decision("start-9", timeout)


@pytest.mark.parametrize(
    "raw", [b"not json", b"[1, 2]", b'{"outcome": "granted"}', b'{"allowed": "yes", "outcome": "granted"}']
)
def test_something_else_than_a_decision_in_the_list_is_an_error(
    client: EnrolmentClient, store: redis.Redis, raw: bytes
) -> None:
    store.rpush(decision_key("start-5"), raw)
    with pytest.raises(MalformedDecision):
        client.peek("start-5")


def test_the_redis_url_comes_from_the_host_variable_then_the_managers_then_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AVTOR_HOST_REDIS_URL", raising=False)
    monkeypatch.delenv("AVTOR_REDIS_URL", raising=False)
    assert redis_url_from_environment() == DEFAULT_REDIS_URL == "redis://127.0.0.1:6379/0"
    monkeypatch.setenv("AVTOR_REDIS_URL", "redis://manager:6379/1")
    assert redis_url_from_environment() == "redis://manager:6379/1"
    monkeypatch.setenv("AVTOR_HOST_REDIS_URL", "redis://avtor-host:pw@host-side:6379/1")
    assert redis_url_from_environment() == "redis://avtor-host:pw@host-side:6379/1"
    with EnrolmentClient() as host:  # connects lazily: nothing is sent here
        assert host.redis_url == "redis://avtor-host:pw@host-side:6379/1"
    monkeypatch.setenv("AVTOR_HOST_REDIS_URL", "  ")
    assert redis_url_from_environment() == "redis://manager:6379/1"


def test_the_client_sends_neither_client_setinfo_nor_maint_notifications() -> None:
    with EnrolmentClient(URL) as host:
        options = host.redis.connection_pool.connection_kwargs
        assert options.get("driver_info", None) is None
        assert options.get("lib_name", None) is None
        maintenance = options.get("maint_notifications_config")
        assert maintenance is None or not maintenance.enabled
        assert (options["username"], options["password"], options["db"]) == ("avtor-host", "s3cret-pw", 2)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://avtor-host:pw@h:6379/0", "redis://avtor-host:***@h:6379/0"),
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("rediss://u:p%40ss@h/0", "rediss://u:***@h/0"),
        ("redis://h:6379/0?password=pw&socket_timeout=5", "redis://h:6379/0?password=***&socket_timeout=5"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("unix:///run/redis.sock?db=1", "unix:///run/redis.sock?db=1"),
    ],
)
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_decided_at_and_occurred_at_are_utc_with_a_z() -> None:
    from host_client.protocol import rfc3339

    assert rfc3339(datetime(2026, 11, 30, 9, 12, 0, 41000, tzinfo=UTC)) == "2026-11-30T09:12:00.041Z"
