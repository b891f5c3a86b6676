"""The enrolment stream against a real Redis: results as Celery stores them, acknowledgements in one go."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import redis
from celery import Celery

from tests.support.broker import guarded_connection
from tests.support.manager import celery_client
from tests.support.servers import RedisServer
from worker.enrolment_stream import result_writer
from worker.transport import acknowledge


@pytest.fixture
def app(redis_service: RedisServer) -> Iterator[Celery]:
    redis_service.flush()
    app = celery_client(redis_service.url)
    yield app
    app.close()


def test_decisions_are_stored_as_celery_stores_a_tasks_result(
    app: Celery, redis_service: RedisServer
) -> None:
    decisions = {str(uuid.uuid4()): {"allowed": True, "outcome": "granted", "n": n} for n in range(3)}
    subscriber = redis.Redis.from_url(redis_service.url).pubsub()
    first = next(iter(decisions))
    subscriber.subscribe(f"celery-task-meta-{first}")
    subscriber.get_message(timeout=5)  # the subscription's confirmation

    result_writer(app.backend)(list(decisions.items()))

    for task_id, decision in decisions.items():
        result = app.AsyncResult(task_id)
        assert (result.state, result.get(timeout=5)) == ("SUCCESS", decision)
        assert 0 < redis.Redis.from_url(redis_service.url).ttl(f"celery-task-meta-{task_id}") <= 3600
    # Field for field what Celery stores for a task's success, but the time and the ids.
    celerys = str(uuid.uuid4())
    app.backend.store_result(celerys, {"outcome": "granted"}, "SUCCESS")
    client = redis.Redis.from_url(redis_service.url)
    ours = json.loads(client.get(f"celery-task-meta-{first}") or "null")
    theirs = json.loads(client.get(f"celery-task-meta-{celerys}") or "null")
    assert sorted(ours) == sorted(theirs)
    assert (ours["status"], ours["traceback"], ours["task_id"]) == (theirs["status"], None, first)
    assert ours["children"] == []  # as a task run by a worker that started no other task
    published = subscriber.get_message(timeout=5)
    assert published is not None and json.loads(published["data"])["result"] == decisions[first]
    subscriber.close()


def test_a_result_already_stored_as_a_success_is_kept(app: Celery) -> None:
    task_id = str(uuid.uuid4())
    app.backend.store_result(task_id, {"outcome": "granted"}, "SUCCESS")
    retried = str(uuid.uuid4())
    app.backend.store_result(retried, None, "RETRY")

    result_writer(app.backend)(
        [(task_id, {"outcome": "already_enrolled"}), (retried, {"outcome": "granted"})]
    )

    assert app.AsyncResult(task_id).get(timeout=5) == {"outcome": "granted"}
    assert app.AsyncResult(retried).get(timeout=5) == {"outcome": "granted"}


def test_messages_taken_atomically_are_acknowledged_in_one_round_trip(redis_service: RedisServer) -> None:
    redis_service.flush()
    client = redis.Redis.from_url(redis_service.url)
    with guarded_connection(redis_service.url) as connection:
        queue = connection.SimpleQueue("avtor.test.batch")
        for number in range(5):
            queue.put({"n": number})
        messages = [queue.get(timeout=5) for _ in range(5)]
        assert client.hlen("unacked") == 5
        messages[0].ack()
        transactions = exec_calls(client)

        acknowledge(messages)

        assert exec_calls(client) == transactions + 1
        assert client.hlen("unacked") == 0
        assert client.zcard("unacked_index") == 0
        assert all(message.acknowledged for message in messages)
        channel = messages[1].channel
        assert not channel.qos._delivered or set(channel.qos._delivered) <= channel.qos._dirty
        queue.put({"n": 5})
        assert queue.get(timeout=5).payload == {"n": 5}
        queue.close()


def exec_calls(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_exec", {}).get("calls", 0))
