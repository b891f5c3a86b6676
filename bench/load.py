"""Editors' starts as hosts send them (stream entries), and their decisions as hosts read them."""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.typing import EncodableT, FieldT

from worker.requests_stream import DECISION_KEY_PREFIX, REQUESTS_STREAM

# A field the consumers ignore (unknown fields are allowed): when the entry was sent, Unix seconds.
SENT_FIELD = "bench_sent_at"
# A steady publisher sends what is due once per tick, in one pipeline.
TICK_SECONDS = 0.001
CHUNK = 1000


@dataclass(frozen=True)
class Start:
    """One editor's start: the entry's fields."""

    request_id: str
    username: str

    def fields(self, **more: str) -> dict[FieldT, EncodableT]:
        """The entry as a host adds it, with `more` fields the consumers ignore."""
        fields: dict[FieldT, EncodableT] = {"request_id": self.request_id, "username": self.username}
        fields["host"] = "bench"
        fields.update(more)
        return fields


def starts(editors: str, requests: str, count: int, distinct: int | None = None) -> list[Start]:
    """`count` starts, each under a request id of its own, by `distinct` editors in turn (default `count`)."""
    return [
        Start(f"{requests}-{number}", f"sitecore\\{editors}{number % (distinct or count):07d}")
        for number in range(count)
    ]


def pre_queue(client: redis.Redis, batch: Sequence[Start]) -> None:
    """Add every entry to the stream (while no consumer reads it), in pipelines of a thousand."""
    for begin in range(0, len(batch), CHUNK):
        with client.pipeline(transaction=False) as pipe:
            for start in batch[begin : begin + CHUNK]:
                pipe.xadd(REQUESTS_STREAM, start.fields())
            pipe.execute()


@dataclass
class Published:
    """When each entry of a steady stream was sent (Unix seconds), and the rate it came out at."""

    sent_at: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        span = self.sent_at[-1] - self.sent_at[0]
        return (len(self.sent_at) - 1) / span if span > 0 else float("inf")


def publish_steadily(client: redis.Redis, batch: Sequence[Start], rate: float) -> Published:
    """Add the entries at `rate` a second: each tick, what is due by then, in one pipeline.

    Each entry carries its sending time in SENT_FIELD; a publisher that falls behind
    sends what is due at once, so the offered rate holds on average.
    """
    published = Published()
    begin = time.perf_counter()
    wall = time.time() - begin
    sent = 0
    while sent < len(batch):
        due = min(len(batch), int((time.perf_counter() - begin) * rate) + 1)
        if due > sent:
            now = wall + time.perf_counter()
            with client.pipeline(transaction=False) as pipe:
                for start in batch[sent:due]:
                    pipe.xadd(REQUESTS_STREAM, start.fields(**{SENT_FIELD: f"{now:.6f}"}))
                pipe.execute()
            published.sent_at.extend([now] * (due - sent))
            sent = due
        time.sleep(max(0.0, min(TICK_SECONDS, begin + sent / rate - time.perf_counter())))
    return published


class DecisionWaiter:
    """Waits, in a thread of its own, for one request's decision, as a host does (BLPOP)."""

    def __init__(self, url: str, request_id: str, timeout: float) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=timeout + 10)
        self.key = DECISION_KEY_PREFIX + request_id
        self.timeout = timeout
        self.arrived_at: float | None = None
        self.document: dict[str, Any] | None = None
        self.thread = threading.Thread(target=self._wait, daemon=True)
        self.ready = threading.Event()

    def start(self) -> DecisionWaiter:
        self.thread.start()
        self.ready.wait()
        time.sleep(0.01)  # the BLPOP is on its way to Redis
        return self

    def _wait(self) -> None:
        self.client.ping()
        self.ready.set()
        reply = self.client.blpop([self.key], timeout=self.timeout)
        if reply is not None:
            self.arrived_at = time.time()
            self.document = json.loads(reply[1])

    def result(self) -> tuple[float, dict[str, Any]]:
        """When the decision arrived, and the decision; TimeoutError if it did not."""
        self.thread.join(self.timeout + 15)
        self.client.close()
        if self.arrived_at is None or self.document is None:
            raise TimeoutError(f"no decision for {self.key} within {self.timeout:g} s")
        return self.arrived_at, self.document


class DecisionTimes:
    """When each decision list was written, heard from Redis's keyspace notifications (RPUSH)."""

    def __init__(self, url: str, db: int) -> None:
        self.client = redis.Redis.from_url(url)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.channel = f"__keyevent@{db}__:rpush"
        self.times: dict[str, float] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._listen, daemon=True)

    def __enter__(self) -> DecisionTimes:
        self.client.config_set("notify-keyspace-events", "El")
        self.pubsub.subscribe(self.channel)
        self.thread.start()
        return self

    def _listen(self) -> None:
        prefix = len(DECISION_KEY_PREFIX)
        while not self.stopping.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if message is not None:
                arrived = time.time()
                key = message["data"].decode()
                self.times.setdefault(key[prefix:], arrived)

    def wait_for(self, request_ids: Sequence[str], timeout: float) -> None:
        """Wait until every one of `request_ids` was heard of."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.times) >= len(request_ids) and all(r in self.times for r in request_ids):
                return
            time.sleep(0.05)
        missing = sum(1 for r in request_ids if r not in self.times)
        raise TimeoutError(f"{missing} decisions not written within {timeout:g} s")

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.pubsub.close()
        self.client.config_set("notify-keyspace-events", "")
        self.client.close()


def read_decisions(client: redis.Redis, batch: Sequence[Start]) -> list[dict[str, Any] | None]:
    """Every decision of `batch` (None where none is written), removing the lists."""
    found: list[dict[str, Any] | None] = []
    for begin in range(0, len(batch), CHUNK):
        keys = [DECISION_KEY_PREFIX + start.request_id for start in batch[begin : begin + CHUNK]]
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.lindex(key, 0)
            pipe.unlink(*keys)
            values = pipe.execute()[:-1]
        found.extend(None if value is None else json.loads(value) for value in values)
    return found


def check_outcomes(batch: Sequence[Start], decisions: Sequence[dict[str, Any] | None], outcome: str) -> None:
    """Raise unless every start was decided with `outcome` (a benchmark of wrong answers measures nothing)."""
    wrong = [
        (start.request_id, decision)
        for start, decision in zip(batch, decisions, strict=True)
        if decision is None or decision.get("outcome") != outcome
    ]
    if wrong:
        raise RuntimeError(f"{len(wrong)} of {len(batch)} starts not {outcome}, e.g. {wrong[0]}")


def percentiles(times_ms: Sequence[float]) -> tuple[float, float]:
    """p50 and p99 of these times."""
    cuts = statistics.quantiles(times_ms, n=100, method="inclusive")
    return cuts[49], cuts[98]
