"""A host with nothing but a Redis client and the host's Redis user enrols editors, exactly as
docs/host-integration.md shows, against a real Redis, a real store and a real enrolment consumer.

The guide's `redis-cli` and Python examples run here as they are written; only the Redis
address, user and password are put in.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from host_client import REQUESTS_STREAM, EnrolmentClient, EnrolmentTimeout, decision_key
from tests.support.consumers import Consumers
from tests.support.host_redis import guide_example, host_user, redis_cli, with_redis_url
from tests.support.ledger import seat_holders, seed_licenses
from tests.support.workers import ROOT, avtor_environment

pytestmark = [pytest.mark.redis, pytest.mark.slow]

DEAD_LETTERS = "avtor:enrol:dead-letters"


@pytest.fixture
def consumers(store_url: str, redis_url: str) -> Iterator[Consumers]:
    """Start enrolment consumers with `consumers.start(name)`; they are stopped after the test."""
    env = avtor_environment(
        database_url=store_url,
        redis_url=redis_url,
        license_server_url="http://127.0.0.1:9",
        enrolment_visibility_timeout="5s",
    )
    with Consumers(env) as started:
        yield started


@pytest.fixture
def host_url(redis_url: str) -> Iterator[str]:
    """The URL of a host's Redis user made by the guide's rule."""
    with host_user(redis_url) as url:
        yield url


def host_environment(**extra: str) -> dict[str, str]:
    """A host's process environment: nothing of the manager's (no AVTOR_ settings, no PYTHONPATH)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("AVTOR_") and name != "PYTHONPATH"
    }
    return {**env, **extra}


def run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def granted(request_id: str, username: str, used: int, total: int, decided_at: str) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "username": username,
        "allowed": True,
        "outcome": "granted",
        "message": f"Seat granted: {used} of {total} seats in use.",
        "seats_total": total,
        "seats_used": used,
        "decided_at": decided_at,
    }


def test_the_guides_redis_cli_example_enrols_an_editor(
    consumers: Consumers, store_url: str, host_url: str, tmp_path: Path
) -> None:
    seed_licenses(store_url, **{"AVTR-HOST-0001": 25})
    consumers.start("host-cli")
    script = with_redis_url(guide_example("redis-cli"), host_url)
    path = f"{Path(redis_cli()).parent}{os.pathsep}{os.environ.get('PATH', '')}"

    lines = run(["bash", "-eu", "-c", script], tmp_path, host_environment(PATH=path)).splitlines()

    assert len(lines) == 3, lines
    entry_id, key, document = lines
    assert re.fullmatch(r"\d+-\d+", entry_id)
    assert key.startswith("avtor:enrol:decision:")
    request_id = key.removeprefix("avtor:enrol:decision:")
    decision = json.loads(document)
    assert decision == granted(request_id, "sitecore\\bob", 1, 25, decision["decided_at"])
    assert seat_holders(store_url)[:2] == ({"sitecore\\bob"}, 1)


def test_the_guides_redis_py_example_enrols_an_editor_without_anything_of_the_manager(
    consumers: Consumers, store_url: str, host_url: str, tmp_path: Path
) -> None:
    seed_licenses(store_url, **{"AVTR-HOST-0002": 25})
    consumers.start("host-redis-py")
    script = with_redis_url(guide_example("python-redis-py"), host_url) + (
        "\nimport sys"
        "\nassert not {'celery', 'kombu', 'worker', 'domain', 'host_client'} & set(sys.modules)"
        "\nprint(json.dumps({'decision': decision, 'request_id': request_id}))\n"
    )

    # Run outside the repository, so that nothing of the manager could even be imported.
    seen = json.loads(run([sys.executable, "-c", script], tmp_path, host_environment()))

    decision = seen["decision"]
    assert decision == granted(seen["request_id"], "sitecore\\bob", 1, 25, decision["decided_at"])
    assert seat_holders(store_url)[:2] == ({"sitecore\\bob"}, 1)


def test_the_guides_host_client_example_enrols_an_editor(
    consumers: Consumers, store_url: str, host_url: str
) -> None:
    seed_licenses(store_url, **{"AVTR-HOST-0003": 25})
    consumers.start("host-client")
    script = with_redis_url(guide_example("python-host-client"), host_url)

    output = run([sys.executable, "-c", script], ROOT, host_environment(PYTHONPATH=str(ROOT)))

    assert output == "granted Seat granted: 1 of 25 seats in use.\n"
    assert seat_holders(store_url)[:2] == ({"sitecore\\bob"}, 1)


def test_the_same_request_id_takes_no_second_seat_and_every_outcome_reaches_the_host(
    consumers: Consumers, store_url: str, host_url: str
) -> None:
    seed_licenses(store_url, **{"AVTR-HOST-0004": 2})
    consumers.start("host-outcomes")
    with EnrolmentClient(host_url) as client:
        first = client.enrol("sitecore\\Ann", "start-1", timeout=60, host="cms-prod-1")
        again = client.enrol(" SITECORE\\ann", "start-1", timeout=60)
        other = client.enrol("sitecore\\Cid", timeout=60)
        refused = client.enrol("sitecore\\Dan", timeout=60)
        hidden = client.enrol("sitecore\\ann\u200b", timeout=60)

    assert first == granted("start-1", "sitecore\\ann", 1, 2, first["decided_at"])
    assert {**again, "decided_at": None} == {**first, "decided_at": None}
    assert (other["outcome"], other["seats_used"]) == ("granted", 2)
    assert (refused["allowed"], refused["outcome"], refused["seats_used"]) == (False, "no_seats", 2)
    assert (hidden["allowed"], hidden["outcome"], hidden["username"]) == (False, "invalid_request", None)
    assert "U+200B" in hidden["message"]
    assert seat_holders(store_url)[:2] == ({"sitecore\\ann", "sitecore\\cid"}, 2)


def test_without_a_consumer_the_host_times_out_and_the_start_is_decided_once_one_runs(
    consumers: Consumers, store_url: str, redis_url: str, host_url: str
) -> None:
    seed_licenses(store_url, **{"AVTR-HOST-0005": 5})
    manager = redis.Redis.from_url(redis_url)
    with EnrolmentClient(host_url) as client:
        with pytest.raises(EnrolmentTimeout) as timed_out:
            client.enrol("sitecore\\Eve", "start-9", timeout=0.5)
        text = str(timed_out.value)
        assert "stays in the stream avtor:enrol:requests and will still be decided" in text
        assert re.search(r"redis://avtor-host-test-\w+:\*\*\*@127\.0\.0\.1:\d+/\d+", text), text
        assert str(urlsplit(host_url).password) not in text
        # The host sends the start again under the same request id, as the guide says.
        client.send("sitecore\\Eve", "start-9")
        assert manager.xlen(REQUESTS_STREAM) == 2

        consumers.start("host-late")
        decision = client.decision("start-9", timeout=60)

        assert decision == granted("start-9", "sitecore\\eve", 1, 5, decision["decided_at"])
        deadline = time.monotonic() + 30
        while manager.xlen(REQUESTS_STREAM) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert manager.xlen(REQUESTS_STREAM) == 0
        # The list holds one decision at most; if the second entry was decided after the host
        # took the first decision, it says the same.
        later = client.peek("start-9")
        assert later is None or {**later, "decided_at": None} == {**decision, "decided_at": None}
    assert 0 < manager.ttl(decision_key("start-9")) <= 3600 or later is None
    assert seat_holders(store_url)[:2] == ({"sitecore\\eve"}, 1)
    manager.close()


def test_an_entry_without_a_request_id_is_kept_and_takes_no_seat(
    consumers: Consumers, store_url: str, redis_url: str, host_url: str
) -> None:
    seed_licenses(store_url, **{"AVTR-HOST-0006": 5})
    consumers.start("host-kept")
    with EnrolmentClient(host_url) as client:
        client.redis.xadd(REQUESTS_STREAM, {"username": "sitecore\\Mallory"})
        after = client.enrol("sitecore\\Bob", timeout=60)
    assert after["outcome"] == "granted"

    manager = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + 30
    while not manager.llen(DEAD_LETTERS) and time.monotonic() < deadline:
        time.sleep(0.05)
    kept = [json.loads(raw) for raw in manager.lrange(DEAD_LETTERS, 0, -1)]
    manager.close()
    assert len(kept) == 1
    assert kept[0]["request_id"] is None
    assert kept[0]["fields"] == {"username": "sitecore\\Mallory"}
    assert seat_holders(store_url)[:2] == ({"sitecore\\bob"}, 1)
