"""The guarded Redis transport with kombu alone, against a real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu.connection import Connection
from kombu.entity import Queue as KombuQueue
from kombu.utils.encoding import bytes_to_str

from tests.support.broker import guarded_connection
from tests.support.servers import RedisProcess, RedisServer
from worker.transport import TAKING_REGISTRY, TAKING_SOURCES


@pytest.fixture
def connection(redis_service: RedisServer) -> Iterator[Connection]:
    redis_service.flush()
    with guarded_connection(redis_service.url) as connection:
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


def test_a_redis_that_refuses_blmove_is_taken_from_with_brpop(caplog: pytest.LogCaptureFixture) -> None:
    server = RedisProcess().start()
    try:
        client = redis.Redis.from_url(server.url)
        # As an ACL without BLMOVE (or an old Redis) answers: an error reply, not a dropped connection.
        client.execute_command("ACL", "SETUSER", "default", "on", "nopass", "~*", "&*", "+@all", "-blmove")
        with guarded_connection(server.url) as connection:
            queue = connection.SimpleQueue("avtor.test.refused")
            for number in range(2):
                queue.put({"n": number})
            first = queue.get(timeout=5)
            second = queue.get(timeout=5)
            assert [first.payload["n"], second.payload["n"]] == [0, 1]
            assert "Redis refused BLMOVE" in caplog.text
            # Taken with BRPOP, still recorded as unacknowledged until acknowledged.
            assert client.hlen("unacked") == 2
            assert taking_lists(client) == {}
            first.ack()
            second.ack()
            assert client.hlen("unacked") == 0
            queue.close()
    finally:
        server.cleanup()


def test_a_message_left_in_the_taking_list_by_an_unread_reply_is_given_back_and_delivered(
    connection: Connection, redis_service: RedisServer
) -> None:
    client = redis.Redis.from_url(redis_service.url)
    queue = connection.SimpleQueue("avtor.test.unread")
    queue.put({"n": 1})
    first = queue.get(timeout=5)
    first.ack()
    channel = queue.channel
    # A BLMOVE moved a message into the taking list, and its reply was never read (the
    # connection dropped while the reply was on its way).
    queue.put({"n": 2})
    assert client.lmove("avtor.test.unread", channel.taking_key, "RIGHT", "LEFT") is not None
    channel._taking_unread = True

    again = queue.get(timeout=5)

    assert again.payload == {"n": 2}
    assert taking_lists(client) == {}
    assert client.llen("avtor.test.unread") == 0
    again.ack()
    assert client.hlen("unacked") == 0
    queue.close()


def test_a_consumer_of_several_queues_takes_from_each_through_its_own_taking_list(
    connection: Connection, redis_service: RedisServer
) -> None:
    client = redis.Redis.from_url(redis_service.url)
    names = ("avtor.test.one", "avtor.test.two")
    queues = [KombuQueue(name, routing_key=name) for name in names]
    received: list[Any] = []
    with (
        connection.Consumer(queues, callbacks=[lambda body, message: received.append(message)]),
        connection.Producer() as producer,
    ):
        producer.publish({"n": 1}, routing_key="avtor.test.two", declare=queues)
        connection.drain_events(timeout=5)  # found by the script that looks at every queue
        # Nothing waiting: the channel waits on one queue, then looks at all again, in turn.
        with pytest.raises(TimeoutError):
            connection.drain_events(timeout=1)
        producer.publish({"n": 2}, routing_key="avtor.test.one")
        producer.publish({"n": 3}, routing_key="avtor.test.two")
        for _ in range(2):
            connection.drain_events(timeout=5)
    assert sorted(message.payload["n"] for message in received) == [1, 2, 3]
    # One taking list per queue, each registered with its queue, and each left empty.
    registered = {
        bytes_to_str(key): bytes_to_str(queue) for key, queue in client.hgetall(TAKING_SOURCES).items()
    }
    assert sorted(registered.values()) == sorted(names)
    assert client.zcard(TAKING_REGISTRY) == 2
    assert taking_lists(client) == {}
    assert client.hlen("unacked") == 3
    for message in received:
        message.ack()
    assert client.hlen("unacked") == 0
