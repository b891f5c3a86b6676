"""Publishing editor starts the way hosts do (plain Redis), and collecting the decisions."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from host_client import RESULT_KEY_PREFIX, EnrolmentClient


@dataclass(frozen=True)
class Sent:
    """One published editor start."""

    task_id: str
    username: str
    request_id: str


def spelled(name: str, rng: random.Random) -> str:
    """The same user as a host may spell it: any letter case, stray spaces."""
    mixed = "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in name)
    return " " * rng.randint(0, 1) + mixed + " " * rng.randint(0, 1)


def publish_starts(
    redis_url: str, publisher: int, count: int, editors: int, pause: float = 0.0
) -> list[tuple[str, str, str]]:
    """Publish `count` starts of random editors among `editors`; return (task id, user, request id)."""
    rng = random.Random(publisher)
    client = EnrolmentClient(redis_url)
    sent = []
    for number in range(count):
        name = f"sitecore\\Editor{rng.randrange(editors):04d}"
        request_id = f"pub{publisher}-{number}"
        task_id = client.send(spelled(name, rng), request_id)
        sent.append((task_id, name.lower(), request_id))
        if pause:
            time.sleep(pause)
    client.close()
    return sent


def collect_decisions(
    redis_url: str, task_ids: Sequence[str], timeout: float, settle: float | None = None
) -> dict[str, dict[str, Any]]:
    """Wait until every task has a stored result, the time is up, or (with `settle`) no new
    result has come for that long; return the results by task id."""
    client = redis.Redis.from_url(redis_url)
    results: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    progress = time.monotonic()
    missing = list(task_ids)
    while missing and time.monotonic() < deadline:
        still = []
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            for task_id, raw in zip(chunk, client.mget([RESULT_KEY_PREFIX + t for t in chunk]), strict=True):
                if raw is None:
                    still.append(task_id)
                else:
                    results[task_id] = json.loads(raw)
        if len(still) < len(missing):
            progress = time.monotonic()
        elif settle is not None and time.monotonic() - progress > settle:
            break
        missing = still
        if missing:
            time.sleep(0.2)
    client.close()
    return results


def check_decisions_against_store(
    sent: Sequence[tuple[str, str, str]], results: dict[str, dict[str, Any]], holders: set[str]
) -> dict[str, int]:
    """Every request decided, each user granted once if and only if they hold a seat; outcome tally."""
    missing = [task_id for task_id, _, _ in sent if task_id not in results]
    assert not missing, f"{len(missing)} of {len(sent)} requests were never decided"
    statuses = {results[task_id]["status"] for task_id, _, _ in sent}
    assert statuses == {"SUCCESS"}, statuses
    by_user: dict[str, list[str]] = {}
    tally: dict[str, int] = {}
    for task_id, user, request_id in sent:
        decision = results[task_id]["result"]
        assert (decision["username"], decision["request_id"]) == (user, request_id), decision
        by_user.setdefault(user, []).append(decision["outcome"])
        tally[decision["outcome"]] = tally.get(decision["outcome"], 0) + 1
    for user, outcomes in by_user.items():
        if user in holders:
            assert outcomes.count("granted") == 1, (user, outcomes)
            assert set(outcomes) <= {"granted", "already_enrolled"}, (user, outcomes)
        else:
            assert set(outcomes) == {"no_seats"}, (user, outcomes)
    assert holders <= set(by_user), holders - set(by_user)
    return tally


def resend_undecided(
    redis_url: str, sent: Sequence[tuple[str, str, str]], results: dict[str, dict[str, Any]], timeout: float
) -> tuple[list[tuple[str, str, str]], dict[str, dict[str, Any]], int]:
    """Do what a host does when no decision comes: send the start again with the same request id.

    Returns the starts with the resent ones in place of the lost, all the decisions, and how
    many were resent.
    """
    lost = [start for start in sent if start[0] not in results]
    if not lost:
        return list(sent), results, 0
    client = EnrolmentClient(redis_url)
    resent = [(client.send(user, request_id), user, request_id) for _, user, request_id in lost]
    client.close()
    decided = collect_decisions(redis_url, [task_id for task_id, _, _ in resent], timeout)
    kept = [start for start in sent if start[0] in results]
    return kept + resent, {**results, **decided}, len(lost)
