"""Publishing messages the way hosts do, and timing their results from Redis."""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from host_client.protocol import ENROLMENT_QUEUE, RESULT_KEY_PREFIX, task_message


@dataclass(frozen=True)
class Batch:
    """Messages published together: their task ids and when each was sent."""

    task_ids: list[str]
    sent_at: list[float]


def messages(task: str, kwargs_list: Sequence[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Task ids and envelopes for one task per kwargs."""
    ids = [str(uuid.uuid4()) for _ in kwargs_list]
    return ids, [
        task_message(task_id, task, ENROLMENT_QUEUE, kwargs)
        for task_id, kwargs in zip(ids, kwargs_list, strict=True)
    ]


def pre_queue(client: redis.Redis, task: str, kwargs_list: Sequence[dict[str, Any]]) -> Batch:
    """Put every message on the queue at once (one transaction), as a backlog the workers find."""
    ids, envelopes = messages(task, kwargs_list)
    with client.pipeline(transaction=True) as pipe:
        for start in range(0, len(envelopes), 1000):
            # LPUSH of several values keeps their order for BRPOP: the first published is taken first.
            pipe.lpush(ENROLMENT_QUEUE, *envelopes[start : start + 1000])
        sent = time.time()
        pipe.execute()
    return Batch(ids, [sent] * len(ids))


def stream(
    client: redis.Redis, task: str, kwargs_list: Sequence[dict[str, Any]], rate: float | None
) -> Batch:
    """Publish one message at a time, as fast as possible or at `rate` per second."""
    ids, envelopes = messages(task, kwargs_list)
    sent_at = []
    start = time.perf_counter()
    wall = time.time()
    for number, envelope in enumerate(envelopes):
        if rate:
            delay = start + number / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        sent_at.append(wall + (time.perf_counter() - start))
        client.lpush(ENROLMENT_QUEUE, envelope)
    return Batch(ids, sent_at)


def wait_for_results(client: redis.Redis, task_ids: Sequence[str], timeout: float) -> list[dict[str, Any]]:
    """Wait until every task has a result (looking at the last few only, to disturb little)."""
    deadline = time.monotonic() + timeout
    tail = list(task_ids[-20:])
    while time.monotonic() < deadline:
        if all(value is not None for value in client.mget([RESULT_KEY_PREFIX + t for t in tail])):
            results = _all_results(client, task_ids)
            missing = [task_id for task_id, result in zip(task_ids, results, strict=True) if result is None]
            if not missing:
                return [result for result in results if result is not None]
            tail = missing[-20:]
        time.sleep(0.05)
    raise TimeoutError(f"results still missing after {timeout:g} s")


def _all_results(client: redis.Redis, task_ids: Sequence[str]) -> list[dict[str, Any] | None]:
    found: list[dict[str, Any] | None] = []
    for start in range(0, len(task_ids), 1000):
        chunk = task_ids[start : start + 1000]
        found.extend(
            None if raw is None else json.loads(raw)
            for raw in client.mget([RESULT_KEY_PREFIX + t for t in chunk])
        )
    return found


def done_at(result: dict[str, Any]) -> float:
    """When the worker stored the result, as a Unix time."""
    return datetime.fromisoformat(result["date_done"]).timestamp()


def throughput(batch: Batch, results: Sequence[dict[str, Any]]) -> float:
    """Results per second from the first publish to the last result."""
    finished = max(done_at(result) for result in results)
    return len(results) / (finished - min(batch.sent_at))


def latencies(batch: Batch, results: Sequence[dict[str, Any]]) -> tuple[float, float]:
    """p50 and p99 of publish-to-result times, in milliseconds."""
    by_id = {result["task_id"]: done_at(result) for result in results}
    times = sorted(
        (by_id[task_id] - sent) * 1000 for task_id, sent in zip(batch.task_ids, batch.sent_at, strict=True)
    )
    percentiles = statistics.quantiles(times, n=100, method="inclusive")
    return percentiles[49], percentiles[98]
