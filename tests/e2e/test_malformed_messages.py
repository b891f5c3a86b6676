"""Whatever lands on a queue, the worker answers what it can, keeps the rest, and goes on."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.enrolment import InvalidEnrolment, read_enrolment_request
from host_client import EnrolmentClient, enrolment_message
from host_client.protocol import task_message
from tests.e2e.conftest import Fleet
from tests.support.ledger import seed_licenses
from tests.support.publishing import collect_decisions
from tests.support.workers import CeleryProcess
from worker.dead_letters import DEAD_LETTER_KEY
from worker.guard import DELIVERY_COUNT_KEY, MAX_DELIVERIES
from worker.transport import TAKING_REGISTRY

ALLOWED_OR_REFUSED = {"granted", "already_enrolled", "no_seats", "over_limit"}


def envelope(
    body: bytes, task: Any = "avtor.enrol", content_type: str = "application/json", **headers: Any
) -> tuple[str, str]:
    task_id = str(uuid.uuid4())
    message = json.loads(task_message(task_id, "avtor.enrol", "avtor.enrolment", {}))
    message["body"] = base64.b64encode(body).decode()
    message["content-type"] = content_type
    message["headers"]["task"] = task
    message["headers"].update(headers)
    return task_id, json.dumps(message)


def dead_letters(client: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(item) for item in client.lrange(DEAD_LETTER_KEY, 0, -1)]


@pytest.fixture
def worker(fleet: Fleet, store_url: str) -> CeleryProcess:
    seed_licenses(store_url, **{"AVTR-FUZZ-0001": 10})
    return fleet.worker("fuzz-a", concurrency=2)


def alive_and_deciding(worker: CeleryProcess, redis_url: str) -> None:
    assert worker.process is not None and worker.process.poll() is None, worker.log()[-3000:]
    decision = EnrolmentClient(redis_url).enrol("sitecore\\canary", timeout=30)
    assert decision["outcome"] in ALLOWED_OR_REFUSED


def test_malformed_task_messages_get_an_invalid_request_decision(
    worker: CeleryProcess, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    cases = {
        "kwargs not an object": envelope(json.dumps([[], ["bob"], {}]).encode()),
        "body not a list": envelope(json.dumps({"username": "bob"}).encode()),
        "body of two items": envelope(json.dumps([[], {"username": "bob"}]).encode()),
        "body not JSON": envelope(b"\xff\xfe{{"),
        "callbacks smuggled in": envelope(
            json.dumps([[], {"username": "bob"}, {"callbacks": [{"task": "x"}]}]).encode()
        ),
        "pickle": envelope(b"\x80\x04K\x01.", content_type="application/x-python-serialize"),
        "bad time limit": envelope(json.dumps([[], {"username": "bob"}, {}]).encode(), timelimit="soon"),
    }
    for _, raw in cases.values():
        client.lpush("avtor.enrolment", raw)
    results = collect_decisions(redis_url, [task_id for task_id, _ in cases.values()], timeout=60)

    for case, (task_id, _) in cases.items():
        assert results[task_id]["status"] == "SUCCESS", case
        decision = results[task_id]["result"]
        assert (decision["outcome"], decision["allowed"]) == ("invalid_request", False), case
        assert decision["message"].startswith(
            "The enrolment request is invalid: the message could not be read"
        )
    kept = {letter["id"] for letter in dead_letters(client)}
    assert {task_id for task_id, _ in cases.values()} <= kept
    alive_and_deciding(worker, redis_url)


def test_items_that_are_not_messages_are_kept_for_an_operator(worker: CeleryProcess, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    junk = ["not json at all", json.dumps([1, 2, 3]), json.dumps({"body": 5}), "", json.dumps("text")]
    for item in junk:
        client.lpush("avtor.enrolment", item)
    unknown_id, unknown = envelope(json.dumps([[], {}, {}]).encode(), task="avtor.unknown_task")
    client.lpush("avtor.enrolment", unknown)
    unknown_admin_id, unknown_admin = envelope(json.dumps([[], {}, {}]).encode(), task="avtor.admin.unknown")
    client.lpush("avtor.admin", unknown_admin)

    alive_and_deciding(worker, redis_url)
    failed = collect_decisions(redis_url, [unknown_id, unknown_admin_id], timeout=30)
    letters = dead_letters(client)
    kept_items = [letter["message"]["body"]["item"] for letter in letters if letter["message"].get("body")]
    assert sorted(kept_items) == sorted(junk)
    for task_id in (unknown_id, unknown_admin_id):
        assert any(letter["id"] == task_id and "unknown task" in letter["reason"] for letter in letters)
        assert failed[task_id]["status"] == "FAILURE"


def test_a_message_redelivered_again_and_again_is_stopped_and_kept(
    worker: CeleryProcess, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    task_id = str(uuid.uuid4())
    message = json.loads(enrolment_message(task_id, "sitecore\\poison"))
    message["properties"]["delivery_info"]["redelivered"] = True
    key = "celery-task-meta-" + task_id
    statuses = []
    for _ in range(MAX_DELIVERIES):
        client.delete(key)
        client.lpush("avtor.enrolment", json.dumps(message))
        statuses.append(collect_decisions(redis_url, [task_id], timeout=30)[task_id]["status"])
    assert statuses == ["SUCCESS"] * (MAX_DELIVERIES - 1) + ["FAILURE"]
    final = json.loads(client.get(key) or b"null")
    assert final["result"]["exc_type"] == "PoisonMessage"
    assert client.get(DELIVERY_COUNT_KEY.format(id=task_id)) == str(MAX_DELIVERIES).encode()
    assert any(letter["id"] == task_id and "poison" in letter["reason"] for letter in dead_letters(client))
    alive_and_deciding(worker, redis_url)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
field_names = st.sampled_from(["username", "request_id", "occurred_at"]) | st.text(max_size=12)
kwargs_strategy = (
    st.dictionaries(field_names, json_values, max_size=4)
    | st.fixed_dictionaries({"username": st.text(max_size=300)})
    | st.fixed_dictionaries(
        {"username": st.text(min_size=1, max_size=40)}, optional={"request_id": st.text(max_size=30)}
    )
)
args_strategy: st.SearchStrategy[list[Any]] = st.just([]) | st.lists(json_values, max_size=2)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(args_strategy, kwargs_strategy), min_size=1, max_size=25))
def test_generated_enrolment_messages_all_get_a_decision(
    worker: CeleryProcess, redis_url: str, messages: list[tuple[list[Any], dict[str, Any]]]
) -> None:
    client = redis.Redis.from_url(redis_url)
    sent = []
    for args, kwargs in messages:
        task_id = str(uuid.uuid4())
        raw = json.loads(task_message(task_id, "avtor.enrol", "avtor.enrolment", kwargs))
        body = json.dumps([args, kwargs, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
        raw["body"] = base64.b64encode(body.encode("utf-8", "surrogatepass")).decode()
        client.lpush("avtor.enrolment", json.dumps(raw))
        sent.append((task_id, args, kwargs))
    results = collect_decisions(redis_url, [task_id for task_id, _, _ in sent], timeout=60)
    assert len(results) == len(sent), worker.log()[-3000:]

    for task_id, args, kwargs in sent:
        assert results[task_id]["status"] == "SUCCESS", results[task_id]
        decision = results[task_id]["result"]
        try:
            read_enrolment_request(args, kwargs)
        except InvalidEnrolment:
            assert decision["outcome"] == "invalid_request", (args, kwargs, decision)
        else:
            assert decision["outcome"] in ALLOWED_OR_REFUSED or "already used" in decision["message"], (
                decision
            )
    assert worker.process is not None and worker.process.poll() is None


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(json_values.map(json.dumps) | st.text(max_size=200), min_size=1, max_size=10))
def test_generated_junk_items_are_all_kept_and_the_worker_goes_on(
    worker: CeleryProcess, redis_url: str, items: list[str]
) -> None:
    client = redis.Redis.from_url(redis_url)
    before = client.llen(DEAD_LETTER_KEY)
    for item in items:
        client.lpush("avtor.enrolment", item.encode("utf-8", "surrogatepass"))
    alive_and_deciding(worker, redis_url)
    assert client.llen(DEAD_LETTER_KEY) - before == len(items)


header_names = st.sampled_from(
    [
        "eta",
        "expires",
        "timelimit",
        "retries",
        "shadow",
        "root_id",
        "parent_id",
        "group",
        "argsrepr",
        "ignore_result",
        "kwargsrepr",
        "origin",
        "stamps",
        "replaced_task_nesting",
        "lang",
    ]
)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.dictionaries(header_names, json_values, min_size=1, max_size=4), min_size=1, max_size=10))
def test_generated_headers_never_stop_the_worker_and_each_start_is_answered(
    worker: CeleryProcess, redis_url: str, header_sets: list[dict[str, Any]]
) -> None:
    client = redis.Redis.from_url(redis_url)
    sent = []
    for headers in header_sets:
        task_id, raw = envelope(json.dumps([[], {"username": "sitecore\\header"}, {}]).encode(), **headers)
        client.lpush("avtor.enrolment", raw)
        sent.append(task_id)
    results = collect_decisions(redis_url, sent, timeout=60)
    assert len(results) == len(sent), worker.log()[-3000:]
    for task_id in sent:
        assert results[task_id]["status"] in {"SUCCESS", "FAILURE"}
    alive_and_deciding(worker, redis_url)


def test_a_worker_on_one_queue_keeps_junk_it_took_and_leaves_nothing_taken(
    fleet: Fleet, store_url: str, redis_url: str
) -> None:
    seed_licenses(store_url, **{"AVTR-FUZZ-0002": 10})
    worker = fleet.worker("fuzz-one", concurrency=2, queues="avtor.enrolment")
    client = redis.Redis.from_url(redis_url)
    junk = ["not json at all", json.dumps([1, 2, 3]), json.dumps({"body": 5}), json.dumps({"properties": 7})]
    for item in junk:
        client.lpush("avtor.enrolment", item)

    alive_and_deciding(worker, redis_url)
    kept_items = [
        letter["message"]["body"]["item"] for letter in dead_letters(client) if letter["message"].get("body")
    ]
    assert sorted(kept_items) == sorted(junk)
    taking_lists = [key for key in client.zrange(TAKING_REGISTRY, 0, -1) if isinstance(key, bytes)]
    assert len(taking_lists) == 1 and client.llen(taking_lists[0]) == 0
