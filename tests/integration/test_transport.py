"""The guarded Redis transport with kombu alone, against a real Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from kombu.connection import Connection

from tests.support.servers import RedisServer
from worker.transport import TAKING_REGISTRY, TAKING_SOURCES


@pytest.fixture
def connection(redis_service: RedisServer) -> Iterator[Connection]:
    redis_service.flush()
    with Connection(
        redis_service.url,
        transport="worker.transport:GuardedTransport",
        transport_options={"priority_steps": [0], "visibility_timeout": 5},
    ) as connection:
        yield connection


def taking_lists(client: redis.Redis) -> dict[bytes, int]:
    lists = [key for key in client.scan_iter("avtor.taking.*") if client.type(key) == b"list"]
    return {key: client.llen(key) for key in lists}


def test_an_acknowledged_consumer_takes_through_its_taking_list_and_leaves_it_empty(
    connection: Connection, redis_service: RedisServer
) -> None:
    client = redis.Redis.from_url(redis_service.url)
    queue = connection.SimpleQueue("avtor.test.acked")
    queue.put({"n": 1})
    message = queue.get(timeout=5)
    assert message.payload == {"n": 1}
    # Taken atomically: unacknowledged, and no longer in the taking list.
    [registered] = [key for key in client.zrange(TAKING_REGISTRY, 0, -1) if isinstance(key, bytes)]
    assert client.hget(TAKING_SOURCES, registered) == b"avtor.test.acked"
    assert taking_lists(client) == {}
    assert client.hlen("unacked") == 1
    message.ack()
    assert client.hlen("unacked") == 0
    queue.close()


def test_a_consumer_without_acknowledgements_takes_with_brpop(
    connection: Connection, redis_service: RedisServer
) -> None:
    client = redis.Redis.from_url(redis_service.url)
    queue = connection.SimpleQueue("avtor.test.unacked", no_ack=True)
    for number in range(3):
        queue.put({"n": number})
    assert [queue.get(timeout=5).payload["n"] for _ in range(3)] == [0, 1, 2]
    assert client.zcard(TAKING_REGISTRY) == 0
    assert taking_lists(client) == {}
    queue.close()
