"""The enrolment message as it travels through Redis: Celery's message protocol 2, in JSON."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

ENROLMENT_QUEUE = "avtor.enrolment"
ENROL_TASK = "avtor.enrol"
RESULT_KEY_PREFIX = "celery-task-meta-"


def enrolment_message(
    task_id: str, username: Any, request_id: str | None = None, occurred_at: str | None = None
) -> str:
    """The JSON envelope to LPUSH onto the `avtor.enrolment` list for one editor start."""
    kwargs: dict[str, Any] = {"username": username}
    if request_id is not None:
        kwargs["request_id"] = request_id
    if occurred_at is not None:
        kwargs["occurred_at"] = occurred_at
    return task_message(task_id, ENROL_TASK, ENROLMENT_QUEUE, kwargs)


def task_message(task_id: str, task: str, queue: str, kwargs: dict[str, Any]) -> str:
    """A protocol-2 task message with keyword arguments only."""
    body = json.dumps([[], kwargs, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
    envelope = {
        "body": base64.b64encode(body.encode("utf-8")).decode("ascii"),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": task,
            "id": task_id,
            "root_id": task_id,
            "parent_id": None,
            "group": None,
            "retries": 0,
            "eta": None,
            "expires": None,
            "timelimit": [None, None],
            "argsrepr": "()",
            "kwargsrepr": repr(kwargs)[:1024],
            "origin": "avtor-host-client",
        },
        "properties": {
            "correlation_id": task_id,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            # Every message needs a tag of its own: the broker keeps unacknowledged
            # messages by this tag until the worker acknowledges them.
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(envelope)


def read_result(raw: bytes | str) -> dict[str, Any]:
    """The stored result object: {"status": ..., "result": ..., ...}."""
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError(f"not a result object: {value!r}")
    return value
