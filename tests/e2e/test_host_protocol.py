"""A host with nothing but a Redis client enrols an editor, exactly as docs/host-integration.md shows."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import redis

from tests.e2e.conftest import Fleet
from tests.support.ledger import seed_licenses
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
