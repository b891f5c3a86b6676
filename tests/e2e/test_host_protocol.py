"""A host with nothing but a Redis client enrols an editor, exactly as docs/host-integration.md shows."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys

import pytest
import redis

from host_client import (
    ENROLMENT_QUEUE,
    RESULT_KEY_PREFIX,
    EnrolmentClient,
    EnrolmentFailed,
    EnrolmentTimeout,
    enrol,
)
from tests.e2e.conftest import Fleet
from tests.support.ledger import seat_holders, seed_licenses
from tests.support.workers import ROOT

DOC = ROOT / "docs" / "host-integration.md"
DOC_REDIS_URL = "redis://127.0.0.1:6379/0"


def documented_example() -> str:
    """The first Python example of the host integration guide."""
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)[0]


def test_a_host_enrols_an_editor_with_the_documented_plain_redis_example(
    fleet: Fleet, store_url: str, redis_url: str
) -> None:
    seed_licenses(store_url, **{"AVTR-HOST-0001": 25})
    fleet.worker("host-a", concurrency=1)
    example = documented_example()
    assert DOC_REDIS_URL in example
    script = example.replace(DOC_REDIS_URL, redis_url) + (
        "\nassert not {'celery', 'worker', 'host_client'} & set(sys.modules)"
        "\nprint(json.dumps({'decision': decision, 'task_id': task_id}))\n"
    )

    run = subprocess.run(
        [sys.executable, "-c", "import sys\n" + script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr

    seen = json.loads(run.stdout)
    assert seen["decision"] == {
        "allowed": True,
        "outcome": "granted",
        "username": "sitecore\\bob",
        "message": "Seat granted: 1 of 25 seats in use.",
        "seats_total": 25,
        "seats_used": 1,
        "request_id": "start-42",
    }
    stored = redis.Redis.from_url(redis_url)
    key = "celery-task-meta-" + seen["task_id"]
    assert json.loads(stored.get(key) or b"{}")["status"] == "SUCCESS"
    assert 3500 < stored.ttl(key) <= 3600  # decisions stay readable for an hour by default


def test_the_python_host_client_enrols_and_a_repeated_request_takes_no_second_seat(
    fleet: Fleet, store_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_licenses(store_url, **{"AVTR-HOST-0002": 2})
    fleet.worker("host-b", concurrency=2)
    monkeypatch.setenv("AVTOR_REDIS_URL", redis_url)  # where enrol() finds Redis when not told

    first = enrol("sitecore\\Ann", request_id="start-1", timeout=60)
    again = enrol("SITECORE\\ann", request_id="start-1", timeout=60, redis_url=redis_url)
    other = enrol("sitecore\\Cid", timeout=60)
    refused = enrol("sitecore\\Dan", timeout=60)

    assert (first["outcome"], first["seats_used"]) == ("granted", 1)
    assert again == first
    assert (other["outcome"], other["seats_used"], other["request_id"]) == ("granted", 2, None)
    assert (refused["allowed"], refused["outcome"]) == (False, "no_seats")
    holders, counted, _ = seat_holders(store_url)
    assert holders == {"sitecore\\ann", "sitecore\\cid"} and counted == 2


def test_no_worker_means_a_timeout_that_names_redis_and_the_start_stays_queued(redis_url: str) -> None:
    client = EnrolmentClient(redis_url)
    with pytest.raises(EnrolmentTimeout, match="are the Avtor workers running") as timed_out:
        client.enrol("sitecore\\eve", request_id="start-9", timeout=0.5)
    assert "redis://" in str(timed_out.value)
    queued = [json.loads(raw) for raw in redis.Redis.from_url(redis_url).lrange(ENROLMENT_QUEUE, 0, -1)]
    assert [json.loads(base64.b64decode(message["body"]))[1] for message in queued] == [
        {"username": "sitecore\\eve", "request_id": "start-9"}
    ]


def test_a_failure_result_is_an_error_for_the_host_not_a_refusal(redis_url: str) -> None:
    stored = redis.Redis.from_url(redis_url)
    task_id = "0b6a3c52-9d1e-4f3a-8a53-6d1f1f0b7c11"
    failure = {"status": "FAILURE", "result": {"exc_type": "OperationalError", "exc_message": ["down"]}}
    stored.set(RESULT_KEY_PREFIX + task_id, json.dumps({**failure, "task_id": task_id}))
    with pytest.raises(EnrolmentFailed, match=r"could not decide enrolment .*FAILURE"):
        EnrolmentClient(redis_url).decision(task_id, timeout=5)
