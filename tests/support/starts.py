"""Editors' starts as hosts send them (XADD), and the decisions hosts read back (LRANGE)."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from worker.requests_stream import DECISION_KEY_PREFIX, REQUESTS_STREAM


@dataclass(frozen=True)
class Start:
    """One editor start as sent: the request id and the user name as the manager compares it."""

    request_id: str
    username: str


def spelled(name: str, rng: random.Random) -> str:
    """The same user as a host may spell it: any letter case, stray spaces."""
    mixed = "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in name)
    return " " * rng.randint(0, 1) + mixed + " " * rng.randint(0, 1)


def send_starts(
    redis_url: str, publisher: int, count: int, editors: int, pause: float = 0.0, chunk: int = 200
) -> list[Start]:
    """Send `count` starts of random editors among `editors`, `chunk` at a time, `pause` s apart."""
    rng = random.Random(publisher)
    client = redis.Redis.from_url(redis_url)
    sent: list[Start] = []
    try:
        for first in range(0, count, chunk):
            with client.pipeline(transaction=False) as pipe:
                for number in range(first, min(count, first + chunk)):
                    name = f"sitecore\\Editor{rng.randrange(editors):04d}"
                    request_id = f"pub{publisher}-{number}"
                    pipe.xadd(REQUESTS_STREAM, {"request_id": request_id, "username": spelled(name, rng)})
                    sent.append(Start(request_id, name.lower()))
                pipe.execute()
            if pause:
                time.sleep(pause)
    finally:
        client.close()
    return sent


def send_in_background(
    redis_url: str, count: int, editors: int, pause: float
) -> tuple[threading.Thread, list[Start]]:
    """Send starts from a thread, a little apart, as hosts do while the test does something else."""
    sent: list[Start] = []
    thread = threading.Thread(
        target=lambda: sent.extend(send_starts(redis_url, 7, count, editors, pause, 20))
    )
    thread.start()
    return thread, sent


def read_decisions(client: redis.Redis, request_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The decisions written so far, by request id (read without taking them)."""
    found: dict[str, dict[str, Any]] = {}
    for first in range(0, len(request_ids), 500):
        chunk = request_ids[first : first + 500]
        with client.pipeline(transaction=False) as pipe:
            for request_id in chunk:
                pipe.lrange(DECISION_KEY_PREFIX + request_id, 0, -1)
            for request_id, documents in zip(chunk, pipe.execute(), strict=True):
                if documents:
                    assert len(documents) == 1, (request_id, documents)
                    found[request_id] = json.loads(documents[0])
    return found


def collect_decisions(
    redis_url: str, request_ids: Sequence[str], timeout: float, settle: float | None = None
) -> dict[str, dict[str, Any]]:
    """Wait until every request has its decision, the time is up, or (with `settle`) none came for so long."""
    client = redis.Redis.from_url(redis_url)
    decisions: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    progress = time.monotonic()
    try:
        while time.monotonic() < deadline:
            missing = [request_id for request_id in request_ids if request_id not in decisions]
            if not missing:
                break
            fresh = read_decisions(client, missing)
            if fresh:
                decisions.update(fresh)
                progress = time.monotonic()
            elif settle is not None and time.monotonic() - progress > settle:
                break
            time.sleep(0.1)
    finally:
        client.close()
    return decisions


def check_decisions_against_store(
    sent: Sequence[Start], decisions: dict[str, dict[str, Any]], holders: set[str]
) -> dict[str, int]:
    """Every start decided; each user granted once exactly when they hold a seat. The outcomes' tally."""
    missing = [start.request_id for start in sent if start.request_id not in decisions]
    assert not missing, f"{len(missing)} of {len(sent)} starts were never decided, e.g. {missing[:5]}"
    by_user: dict[str, list[str]] = {}
    tally: dict[str, int] = {}
    for start in sent:
        decision = decisions[start.request_id]
        assert (decision["username"], decision["request_id"]) == (start.username, start.request_id), decision
        by_user.setdefault(start.username, []).append(decision["outcome"])
        tally[decision["outcome"]] = tally.get(decision["outcome"], 0) + 1
    for user, outcomes in by_user.items():
        if user in holders:
            assert outcomes.count("granted") == 1, (user, outcomes)
            assert set(outcomes) <= {"granted", "already_enrolled"}, (user, outcomes)
        else:
            assert set(outcomes) == {"no_seats"}, (user, outcomes)
    assert holders <= set(by_user), holders - set(by_user)
    return tally


def decided_count(redis_url: str) -> int:
    """How many decisions are in Redis now."""
    client = redis.Redis.from_url(redis_url)
    try:
        return sum(1 for _ in client.scan_iter(DECISION_KEY_PREFIX + "*", count=1000))
    finally:
        client.close()


def wait_until_decided(redis_url: str, at_least: int, timeout: float = 120) -> int:
    """Wait until at least `at_least` decisions are in Redis; return how many there are."""
    deadline = time.monotonic() + timeout
    while (count := decided_count(redis_url)) < at_least:
        assert time.monotonic() < deadline, f"only {count} decisions after {timeout} s"
        time.sleep(0.05)
    return count
