"""Measuring one consumer of the stream (the no-op one or the product's): pre-queued, streamed, latency."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

import redis

from bench.figures import Measured
from bench.load import (
    DecisionTimes,
    DecisionWaiter,
    Start,
    check_outcomes,
    percentiles,
    pre_queue,
    publish_steadily,
    read_decisions,
)
from bench.processes import cpu_seconds, pause, resume
from tests.support.servers import make_redis_url


class MeasuredConsumer:
    """A consumer process reading the stream of a Redis database of its own, and what it is measured by."""

    def __init__(self, redis_url: str, db: int, pid: int, redis_pid: int) -> None:
        self.url = make_redis_url(redis_url, db)
        self.db = db
        self.pid = pid
        self.redis_pid = redis_pid
        self.client = redis.Redis.from_url(self.url)

    def drain(
        self,
        batch: Sequence[Start],
        outcome: str,
        timeout: float,
        running: contextlib.AbstractContextManager[Any] | None = None,
    ) -> Measured:
        """Pre-queued: pause the consumer, add every entry, resume it; time until the last decision.

        One consumer decides in stream order, so the last entry's decision is written
        last; a host-like BLPOP on it notes when. `running` (a profiler) is entered
        before the consumer is paused and left once the last decision is written.
        """
        with running or contextlib.nullcontext():
            pause(self.pid)
            try:
                pre_queue(self.client, batch)
                waiter = DecisionWaiter(self.url, batch[-1].request_id, timeout).start()
            except BaseException:
                resume(self.pid)
                raise
            before = self._cpu()
            began = time.time()
            resume(self.pid)
            ended, last = waiter.result()
            measured = self._measured(len(batch), ended - began, before)
        check_outcomes(batch, [*read_decisions(self.client, batch[:-1]), last], outcome)
        return measured

    def stream(self, batch: Sequence[Start], rate: float, outcome: str, timeout: float) -> Measured:
        """Streamed: entries added at a steady `rate`; time from the first sent to the last decided."""
        waiter = DecisionWaiter(self.url, batch[-1].request_id, timeout).start()
        before = self._cpu()
        published = publish_steadily(self.client, batch, rate)
        ended, last = waiter.result()
        measured = self._measured(len(batch), ended - published.sent_at[0], before)
        check_outcomes(batch, [*read_decisions(self.client, batch[:-1]), last], outcome)
        return measured

    def latencies(
        self, batch: Sequence[Start], rate: float, outcome: str, timeout: float, lead_in: int
    ) -> tuple[float, float]:
        """p50 and p99 (ms) from sending an entry to the writing of its decision, entries sent at `rate`.

        The first `lead_in` entries are not counted: they bring the consumer from idle
        (reading every 50 ms) to the steady state the figure is about.
        """
        with DecisionTimes(self.url, self.db) as decided:
            published = publish_steadily(self.client, batch, rate)
            decided.wait_for([start.request_id for start in batch], timeout)
        check_outcomes(batch, read_decisions(self.client, batch), outcome)
        return percentiles(
            [
                (decided.times[start.request_id] - sent) * 1000
                for start, sent in zip(batch[lead_in:], published.sent_at[lead_in:], strict=True)
            ]
        )

    def _cpu(self) -> tuple[float, float]:
        return cpu_seconds([self.pid]), cpu_seconds([self.redis_pid])

    def _measured(self, count: int, seconds: float, before: tuple[float, float]) -> Measured:
        consumer, redis_cpu = self._cpu()
        return Measured(
            count / seconds, (consumer - before[0]) * 1e6 / count, (redis_cpu - before[1]) * 1e6 / count
        )
