"""Enrol an editor and wait for the decision, with a plain Redis client."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import redis

from host_client.protocol import ENROLMENT_QUEUE, RESULT_KEY_PREFIX, enrolment_message, read_result

DEFAULT_TIMEOUT = 10.0
# The manager's own default (AVTOR_REDIS_URL unset).
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class EnrolmentTimeout(TimeoutError):
    """No decision arrived in time; the request stays queued and may still be decided."""


class EnrolmentFailed(RuntimeError):
    """The manager could not decide (a fault of the manager, not a refusal)."""


class EnrolmentClient:
    """Sends "editor started" messages and waits for decisions."""

    def __init__(self, redis_url: str, client: redis.Redis | None = None) -> None:
        self.redis_url = redis_url
        self.redis = client or redis.Redis.from_url(redis_url)

    def send(self, username: Any, request_id: str | None = None, occurred_at: str | None = None) -> str:
        """Publish one editor start; return its task id, under which the decision will appear."""
        task_id = str(uuid.uuid4())
        self.redis.lpush(ENROLMENT_QUEUE, enrolment_message(task_id, username, request_id, occurred_at))
        return task_id

    def decision(self, task_id: str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """Wait for the decision of `task_id`: the contract's decision object."""
        key = RESULT_KEY_PREFIX + task_id
        deadline = time.monotonic() + timeout
        with self.redis.pubsub(ignore_subscribe_messages=True) as subscription:  # type: ignore[no-untyped-call]
            # Subscribe first, then look: a decision stored in between is not missed.
            subscription.subscribe(key)
            while True:
                raw = self.redis.get(key)
                if raw is not None:
                    return _decision_of(read_result(raw), task_id)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise EnrolmentTimeout(
                        f"No decision for enrolment {task_id} within {timeout:g} s: are the Avtor workers "
                        f"running and connected to {_without_password(self.redis_url)}? The request stays "
                        "queued and will still be decided."
                    )
                subscription.get_message(timeout=min(remaining, 1.0))

    def enrol(
        self, username: Any, request_id: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        """Publish an editor start and wait for its decision."""
        return self.decision(self.send(username, request_id), timeout)

    def close(self) -> None:
        """Close the Redis connections."""
        self.redis.close()


def enrol(
    username: Any,
    request_id: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    redis_url: str | None = None,
) -> dict[str, Any]:
    """Enrol one editor start and return the decision (raises EnrolmentTimeout if none arrives).

    The Redis is `redis_url`, else the one in AVTOR_REDIS_URL, else the manager's default.
    """
    client = EnrolmentClient(redis_url or os.environ.get("AVTOR_REDIS_URL") or DEFAULT_REDIS_URL)
    try:
        return client.enrol(username, request_id, timeout)
    finally:
        client.close()


def _decision_of(result: dict[str, Any], task_id: str) -> dict[str, Any]:
    status = result.get("status")
    if status == "SUCCESS" and isinstance(result.get("result"), dict):
        decision: dict[str, Any] = result["result"]
        return decision
    detail = result.get("result")
    raise EnrolmentFailed(f"The license manager could not decide enrolment {task_id} ({status}: {detail}).")


def _without_password(url: str) -> str:
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, _ = head.partition("://")
    return f"{scheme}://***@{tail}"
