"""A host with nothing but a Redis client enrols an editor, following docs/host-integration.md."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.e2e.conftest import Fleet
from tests.support.ledger import seed_licenses

# Runs in a separate interpreter that imports neither Celery nor the manager: only redis-py.
HOST_SCRIPT = r"""
import base64, json, sys, uuid
import redis

r = redis.Redis.from_url(sys.argv[1])
task_id = str(uuid.uuid4())
body = json.dumps([[], {"username": "Sitecore\\Bob", "request_id": "start-42"},
                   {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
message = {
    "body": base64.b64encode(body.encode()).decode(),
    "content-encoding": "utf-8",
    "content-type": "application/json",
    "headers": {"lang": "py", "task": "avtor.enrol", "id": task_id, "root_id": task_id,
                "parent_id": None, "group": None, "retries": 0, "eta": None, "expires": None,
                "timelimit": [None, None]},
    "properties": {"correlation_id": task_id, "reply_to": "", "delivery_mode": 2,
                   "delivery_info": {"exchange": "", "routing_key": "avtor.enrolment"},
                   "priority": 0, "body_encoding": "base64", "delivery_tag": str(uuid.uuid4())},
}
key = "celery-task-meta-" + task_id
pubsub = r.pubsub(ignore_subscribe_messages=True)
pubsub.subscribe(key)
r.lpush("avtor.enrolment", json.dumps(message))
published = pubsub.get_message(timeout=30)
for _ in range(60):
    if published is not None:
        break
    published = pubsub.get_message(timeout=1)
stored = json.loads(r.get(key))
ttl = r.ttl(key)
assert "celery" not in sys.modules and "worker" not in sys.modules
print(json.dumps({"stored": stored, "published": json.loads(published["data"]), "ttl": ttl}))
"""


def test_a_host_enrols_an_editor_with_plain_redis(fleet: Fleet, store_url: str, redis_url: str) -> None:
    seed_licenses(store_url, **{"AVTR-HOST-0001": 25})
    fleet.worker("host-a", concurrency=1)

    run = subprocess.run(
        [sys.executable, "-c", HOST_SCRIPT, redis_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr

    seen = json.loads(run.stdout)
    assert seen["stored"]["status"] == "SUCCESS"
    assert seen["stored"]["result"] == {
        "allowed": True,
        "outcome": "granted",
        "username": "sitecore\\bob",
        "message": "Seat granted: 1 of 25 seats in use.",
        "seats_total": 25,
        "seats_used": 1,
        "request_id": "start-42",
    }
    assert seen["published"] == seen["stored"]
    assert 3500 < seen["ttl"] <= 3600  # decisions stay readable for an hour by default
