"""Whatever a host writes to the stream, a real consumer goes on: each entry is answered or set aside."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.consumers import ConsumerProcess
from tests.support.ledger import seat_holders, seed_licenses
from tests.support.servers import RedisServer
from tests.support.starts import collect_decisions
from tests.support.stores import migrated_engine
from tests.support.workers import avtor_environment
from worker.requests_stream import KEPT_KEY, REQUESTS_STREAM, read_kept

MEGABYTE = 1024 * 1024


class Host:
    """A host that writes anything at all, and what the manager answered."""

    def __init__(self, redis_url: str, store_url: str, consumer: ConsumerProcess) -> None:
        self.client = redis.Redis.from_url(redis_url)
        self.redis_url = redis_url
        self.store_url = store_url
        self.consumer = consumer

    def add(self, fields: dict[bytes, bytes]) -> None:
        self.client.xadd(REQUESTS_STREAM, fields)  # type: ignore[arg-type]

    def answer(self, request_id: str, timeout: float = 30) -> dict[str, object]:
        decisions = collect_decisions(self.redis_url, [request_id], timeout)
        assert request_id in decisions, f"no decision for {request_id}\n{self.consumer.log()[-3000:]}"
        return decisions[request_id]

    def wait_until_stream_empty(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.client.xlen(REQUESTS_STREAM):
            assert time.monotonic() < deadline, self.consumer.log()[-3000:]
            time.sleep(0.02)

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.consumer.pid}/status").read_text()
        return int(status.split("VmRSS:")[1].split()[0]) / 1024


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, redis_service: RedisServer) -> Iterator[Host]:
    """One consumer on a SQLite store with three seats, shared by this module's tests."""
    redis_url = redis_service.url
    redis.Redis.from_url(redis_url).flushdb()
    store_url = f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'avtor.sqlite3'}"
    migrated_engine(store_url).dispose()
    seed_licenses(store_url, **{"AVTR-HOSTILE-01": 3})
    env = avtor_environment(
        database_url=store_url, redis_url=redis_url, license_server_url="http://127.0.0.1:9"
    )
    consumer = ConsumerProcess(env, "hostile").start()
    try:
        yield Host(redis_url, store_url, consumer)
    finally:
        consumer.cleanup()


field_names = st.sampled_from([b"request_id", b"username", b"occurred_at", b"host", b"v"]) | st.binary(
    max_size=20
)
field_values = st.binary(max_size=300) | st.text(max_size=300).map(str.encode)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.dictionaries(field_names, field_values, max_size=6), answerable=st.booleans())
def test_any_entry_is_answered_when_it_can_be_and_set_aside_otherwise(
    host: Host, fields: dict[bytes, bytes], answerable: bool
) -> None:
    if answerable:
        request_id = f"fuzz-{uuid.uuid4()}"
        fields = {**fields, b"request_id": request_id.encode()}
    if not fields:
        fields = {b"x": b""}  # XADD needs one field
    kept_before = host.client.llen(KEPT_KEY)
    host.add(fields)
    host.wait_until_stream_empty()
    assert host.consumer.running(), host.consumer.log()[-3000:]
    if answerable:
        decision = host.answer(request_id)
        assert decision["request_id"] == request_id
        assert decision["outcome"] in {"granted", "already_enrolled", "no_seats", "invalid_request"}
        assert isinstance(decision["message"], str) and decision["message"]
    else:
        answered = host.client.llen(KEPT_KEY) == kept_before + 1
        readable_id = fields.get(b"request_id")
        assert answered or readable_id is not None, host.consumer.log()[-2000:]


def test_three_fifty_megabyte_names_are_refused_with_little_memory_and_nothing_kept_in_full(
    host: Host,
) -> None:
    before = host.rss_mb()
    huge = b"x" * (50 * MEGABYTE)
    host.add({b"request_id": b"huge-1", b"username": huge})
    host.add({b"request_id": b"huge-2", b"username": huge})
    host.add({b"username": huge})  # no request id: it cannot be answered, only set aside
    del huge
    peak = before
    deadline = time.monotonic() + 30
    while host.client.xlen(REQUESTS_STREAM) and time.monotonic() < deadline:
        peak = max(peak, host.rss_mb())
        time.sleep(0.01)
    peak = max(peak, host.rss_mb())
    for request_id in ("huge-1", "huge-2"):
        decision = host.answer(request_id)
        assert decision["outcome"] == "invalid_request"
        assert "at most 8192 bytes are accepted" in str(decision["message"])
    print(f"consumer RSS {before:.1f} MB before, {peak:.1f} MB at most, {host.rss_mb():.1f} MB after")
    assert peak < 250
    assert host.rss_mb() < before + 20
    [kept] = [entry for entry in read_kept(host.client, 5) if entry["size"] > 50 * MEGABYTE]
    assert len(json.dumps(kept)) < 4096
    assert host.consumer.running()


def test_a_name_with_an_invisible_character_takes_no_second_seat(host: Host) -> None:
    host.add({b"request_id": b"carol-1", b"username": b"sitecore\\carol"})
    assert host.answer("carol-1")["outcome"] in {"granted", "already_enrolled"}
    host.add({b"request_id": b"carol-2", b"username": "sitecore\\carol\u200b".encode()})
    host.add({b"request_id": b"carol-3", b"username": "sitecore\\\u202elorac".encode()})
    for request_id in ("carol-2", "carol-3"):
        decision = host.answer(request_id)
        assert decision["outcome"] == "invalid_request"
        assert "invisible or direction-changing character" in str(decision["message"])


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({b"username": b"bob\xff\xfe"}, "not UTF-8"),
        ({b"username": b""}, "user name is empty"),
        ({b"username": b"   "}, "user name is empty"),
        ({}, "user name is missing"),
        ({b"username": b"bob", b"v": b"1"}, "version 2"),
        ({b"username": b"bob", b"occurred_at": b"yesterday"}, "occurred_at"),
        ({b"username": b"bob", **{f"f{n}".encode(): b"x" for n in range(3000)}}, "at most 8192"),
    ],
)
def test_malformed_entries_are_refused_with_the_reason(
    host: Host, fields: dict[bytes, bytes], reason: str
) -> None:
    request_id = f"bad-{uuid.uuid4()}"
    host.add({b"request_id": request_id.encode(), **fields})
    decision = host.answer(request_id)
    assert decision["outcome"] == "invalid_request"
    assert decision["allowed"] is False
    assert reason in str(decision["message"])


def test_entries_of_a_hundred_thousand_fields_are_refused_and_an_honest_one_behind_them_decided(
    host: Host,
) -> None:
    fields = {f"f{number}".encode(): b"" for number in range(100_000)}
    for number in range(3):
        host.add({b"request_id": f"fields-{number}".encode(), **fields})
    host.add({b"request_id": b"behind-1", b"username": b"sitecore\\Behind"})
    for number in range(3):
        decision = host.answer(f"fields-{number}")
        assert "the entry holds 100001 fields; at most 8192 bytes are accepted" in str(decision["message"])
    assert host.answer("behind-1")["outcome"] in {"granted", "no_seats", "already_enrolled"}
    assert host.consumer.running()


def test_entries_without_a_usable_request_id_are_kept_shortened_with_the_reason(host: Host) -> None:
    before = host.client.llen(KEPT_KEY)
    host.add({b"username": b"no-id"})
    host.add({b"request_id": b"", b"username": b"empty-id"})
    host.add({b"request_id": "caf\u00e9".encode(), b"username": b"accented-id"})
    host.add({b"request_id": b"r" * 200, b"username": b"long-id"})
    host.wait_until_stream_empty()
    kept = read_kept(host.client, host.client.llen(KEPT_KEY) - before)
    assert {entry["fields"].get("username") for entry in kept} == {
        "no-id",
        "empty-id",
        "accented-id",
        "long-id",
    }
    assert all("request_id must be" in entry["reason"] for entry in kept)


def test_after_all_that_an_editor_still_gets_a_seat_and_the_ledger_adds_up(host: Host) -> None:
    host.add({b"request_id": b"after-1", b"username": b"sitecore\\Dave"})
    assert host.answer("after-1")["outcome"] in {"granted", "no_seats", "already_enrolled"}
    assert host.consumer.running()
    assert "Traceback" not in host.consumer.log()
    holders, counted, rows = seat_holders(host.store_url)
    assert len(holders) == counted == rows <= 3
