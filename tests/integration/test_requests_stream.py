"""The hosts' stream on a real Redis: what a consumer reads, takes over, writes back and reports."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import redis

from tests.support.servers import RedisServer
from worker.requests_stream import (
    CONSUMER_GROUP,
    DECISION_KEY_PREFIX,
    FIELD_READ_BYTES,
    KEPT_KEY,
    REQUESTS_STREAM,
    Answer,
    RequestStream,
    Settlement,
    read_stream_state,
)


@pytest.fixture
def client(redis_service: RedisServer) -> Iterator[redis.Redis]:
    redis_service.flush()
    client = redis.Redis.from_url(redis_service.url)
    yield client
    client.close()


def stream_of(client: redis.Redis, name: str = "c1") -> RequestStream:
    stream = RequestStream(client, name, decision_ttl_seconds=3600)
    stream.ensure_group()
    return stream


def test_entries_added_before_the_group_existed_are_read_too(client: redis.Redis) -> None:
    client.xadd(REQUESTS_STREAM, {"request_id": "early", "username": "bob"})
    stream = stream_of(client)
    stream.ensure_group()  # a second time is harmless
    [entry] = stream.read(10)
    assert entry.fields == {"request_id": b"early", "username": b"bob"}


def test_a_read_returns_only_the_known_fields_cut_and_the_entry_s_real_size(client: redis.Redis) -> None:
    stream = stream_of(client)
    big = b"y" * 100_000
    client.xadd(
        REQUESTS_STREAM,
        {"request_id": "r1", "username": big, "colour": "blue", "host": "cms-1", "x" * 500: "1"},
    )
    [entry] = stream.read(10)
    assert entry.size == len("request_id") + 2 + len("username") + len(big) + 10 + 9 + 500 + 1
    assert entry.field_count == 5
    assert len(entry.fields["username"]) == FIELD_READ_BYTES
    assert entry.fields["host"] == b"cms-1"
    assert entry.other_names == ("colour", "x" * 64)


def test_a_read_takes_at_most_count_entries_and_each_once(client: redis.Redis) -> None:
    for number in range(5):
        client.xadd(REQUESTS_STREAM, {"request_id": f"r{number}", "username": "bob"})
    first, second = stream_of(client, "c1"), stream_of(client, "c2")
    taken = first.read(3) + second.read(3) + first.read(3)
    assert sorted(entry.fields["request_id"] for entry in taken) == [f"r{n}".encode() for n in range(5)]


def test_entries_held_too_long_are_taken_over_with_their_delivery_count(client: redis.Redis) -> None:
    client.xadd(REQUESTS_STREAM, {"request_id": "r1", "username": "bob"})
    dead, live = stream_of(client, "dead"), stream_of(client, "live")
    [held] = dead.read(10)
    assert live.reclaim(10, 60_000, "0-0")[1] == [], "not idle long enough yet"
    time.sleep(0.05)
    cursor, [taken] = live.reclaim(10, 20, "0-0")
    assert (taken.id, taken.deliveries, cursor) == (held.id, 2, "0-0")
    pending = client.xpending_range(REQUESTS_STREAM, CONSUMER_GROUP, "-", "+", 10)
    assert [row["consumer"] for row in pending] == [b"live"]


def test_a_consumer_that_keeps_holding_is_not_taken_over(client: redis.Redis) -> None:
    client.xadd(REQUESTS_STREAM, {"request_id": "r1", "username": "bob"})
    busy, other = stream_of(client, "busy"), stream_of(client, "other")
    [held] = busy.read(10)
    time.sleep(0.05)
    busy.keep_holding([held.id])
    assert other.reclaim(10, 40, "0-0")[1] == []


def test_settling_writes_each_decision_as_the_only_element_of_its_list_and_removes_the_entries(
    client: redis.Redis,
) -> None:
    stream = stream_of(client)
    client.xadd(REQUESTS_STREAM, {"request_id": "r1", "username": "bob"})
    client.xadd(REQUESTS_STREAM, {"username": "no id"})
    entries = stream.read(10)
    client.rpush(DECISION_KEY_PREFIX + "r1", "stale")
    stream.settle(
        Settlement(
            answers=[Answer("r1", {"outcome": "granted", "message": "Seat granted: 1 of 5 seats in use."})],
            kept=[{"reason": "no request id"}],
            entry_ids=[entry.id for entry in entries],
        )
    )
    assert [json.loads(item)["outcome"] for item in client.lrange(DECISION_KEY_PREFIX + "r1", 0, -1)] == [
        "granted"
    ]
    assert 3590 < client.ttl(DECISION_KEY_PREFIX + "r1") <= 3600
    assert client.xlen(REQUESTS_STREAM) == 0
    assert client.xpending(REQUESTS_STREAM, CONSUMER_GROUP)["pending"] == 0
    assert json.loads(client.lindex(KEPT_KEY, 0) or b"{}") == {"reason": "no request id"}


def test_the_state_counts_waiting_entries_their_age_and_the_consumers_alive(client: redis.Redis) -> None:
    empty = read_stream_state(client)
    assert (empty.waiting, empty.oldest_age_ms, empty.consumers, empty.kept) == (0, None, (), 0)
    stream = stream_of(client, "reader")
    client.xadd(REQUESTS_STREAM, {"request_id": "r1", "username": "bob"})
    time.sleep(0.2)
    client.xadd(REQUESTS_STREAM, {"request_id": "r2", "username": "eve"})
    stream.read(1)
    state = read_stream_state(client)
    assert state.waiting == 2 and state.pending == 1
    assert state.oldest_age_ms is not None and 150 < state.oldest_age_ms < 10_000
    [consumer] = state.consumers
    assert (consumer.name, consumer.pending) == ("reader", 1)
    assert [alive.name for alive in state.alive(5_000)] == ["reader"]


def test_departed_consumers_holding_nothing_are_forgotten(client: redis.Redis) -> None:
    gone, holder, live = stream_of(client, "gone"), stream_of(client, "holder"), stream_of(client, "live")
    assert gone.read(10) == []
    client.xadd(REQUESTS_STREAM, {"request_id": "r1", "username": "bob"})
    assert len(holder.read(10)) == 1
    time.sleep(0.05)
    assert live.forget_departed(20) == ["gone"], "one that holds entries is kept until they are taken over"
    assert {consumer.name for consumer in read_stream_state(client).consumers} == {"holder"}
