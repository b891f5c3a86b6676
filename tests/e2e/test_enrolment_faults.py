"""Enrolment while workers are killed and Redis restarts."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import redis

from host_client import enrolment_message
from tests.e2e.conftest import Fleet
from tests.support.ledger import seat_holders, seed_licenses
from tests.support.publishing import (
    check_decisions_against_store,
    collect_decisions,
    publish_starts,
    resend_undecided,
)
from tests.support.servers import RedisProcess
from tests.support.stores import migrated_engine
from tests.support.workers import CeleryProcess, avtor_environment
from worker.transport import TAKING_PREFIX, TAKING_REGISTRY, TAKING_SOURCES


def decided(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    count = sum(1 for _ in client.scan_iter("celery-task-meta-*", count=1000))
    client.close()
    return count


def wait_until_decided(redis_url: str, at_least: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while (count := decided(redis_url)) < at_least:
        assert time.monotonic() < deadline, f"only {count} decisions after {timeout} s"
        time.sleep(0.05)
    return count


def stream_while(redis_url: str, count: int) -> tuple[threading.Thread, list[tuple[str, str, str]]]:
    """Publish `count` starts in the background, as hosts do, a little apart."""
    sent: list[tuple[str, str, str]] = []
    publisher = threading.Thread(
        target=lambda: sent.extend(publish_starts(redis_url, 7, count, 400, pause=0.001))
    )
    publisher.start()
    return publisher, sent


def check_every_start_decided_once(redis_url: str, store_url: str, sent: list[tuple[str, str, str]]) -> None:
    # Messages a killed worker had taken come back after the visibility timeout (5 s here).
    results = collect_decisions(redis_url, [task_id for task_id, _, _ in sent], timeout=180, settle=20)
    # Every worker takes atomically: a host never has to send a start again.
    sent, results, resent = resend_undecided(redis_url, sent, results, timeout=60)
    print(f"{resent} of {len(sent)} starts sent again")
    assert resent == 0
    holders, counted, rows = seat_holders(store_url)
    assert len(holders) == counted == rows == 100
    tally = check_decisions_against_store(sent, results, holders)
    assert tally["granted"] == 100


def test_worker_processes_killed_mid_stream_lose_no_start_and_double_no_seat(
    fleet: Fleet, store_url: str, redis_url: str
) -> None:
    seed_licenses(store_url, **{"AVTR-KILL-0001": 100})
    # The first killed takes from both queues; the others are enrolment workers as deployed.
    node_a = fleet.worker("kill-a", queues="avtor.enrolment,avtor.admin")
    fleet.worker("kill-b", queues="avtor.enrolment")
    publisher, sent = stream_while(redis_url, 3000)

    # Twice, a whole worker process dies with everything it holds; what it had taken comes
    # back after the visibility timeout (5 s here) and is decided by the others.
    before_first = wait_until_decided(redis_url, 300)
    node_a.kill()
    fleet.worker("kill-c", queues="avtor.enrolment")
    before_second = wait_until_decided(redis_url, before_first + 600)
    fleet.processes[1].kill()
    publisher.join(timeout=300)
    assert len(sent) == 3000
    assert before_second < len(sent), "the second kill came after the stream ended"
    check_every_start_decided_once(redis_url, store_url, sent)


def test_a_worker_stopped_mid_stream_decides_everything_it_took_before_it_exits(
    fleet: Fleet, store_url: str, redis_url: str
) -> None:
    seed_licenses(store_url, **{"AVTR-STOP-0001": 100})
    node_a = fleet.worker("stop-a", queues="avtor.enrolment")
    publisher, sent = stream_while(redis_url, 2000)
    wait_until_decided(redis_url, 300)

    assert node_a.stop() == 0  # warm shutdown (SIGTERM) while starts keep coming
    # Every message it took was decided and acknowledged before it closed its connection:
    # kombu logs "Restoring N unacknowledged message(s)" when it puts any back at close.
    assert "unacknowledged" not in node_a.log() and "still being decided" not in node_a.log()
    assert decided(redis_url) < 2000, "the worker stopped after the stream ended"

    fleet.worker("stop-b", queues="avtor.enrolment")
    publisher.join(timeout=300)
    check_every_start_decided_once(redis_url, store_url, sent)


def test_a_pool_process_killed_mid_task_puts_its_message_back(tmp_path: Path, redis_url: str) -> None:
    store_url = f"sqlite:///{tmp_path / 'avtor.sqlite3'}"
    migrated_engine(store_url).dispose()
    seed_licenses(store_url, **{"AVTR-KILL-0001": 100})
    fleet = Fleet(store_url, redis_url, visibility_timeout="5s")
    try:
        node = fleet.worker("prefork-a", concurrency=2, pool="prefork")
        publisher, sent = stream_while(redis_url, 1500)
        wait_until_decided(redis_url, 300)
        victim = node.pool_pids()[0]
        os.kill(victim, signal.SIGKILL)
        publisher.join(timeout=300)
        check_every_start_decided_once(redis_url, store_url, sent)
        assert victim not in node.pool_pids()
        assert "exited with 'signal 9" in node.log() or "Process 'ForkPoolWorker" in node.log()
    finally:
        fleet.stop()


def test_workers_reconnect_after_redis_restarts(store_url: str) -> None:
    seed_licenses(store_url, **{"AVTR-RESTART-0001": 50})
    broker = RedisProcess(persistent=True).start()
    env = avtor_environment(
        database_url=store_url,
        redis_url=broker.url,
        license_server_url="http://127.0.0.1:9",
        visibility_timeout="5s",
    )
    worker = CeleryProcess.worker(env, "restart-a", "avtor.enrolment")
    try:
        worker.start()
        in_flight = publish_starts(broker.url, 1, 800, 200)
        wait_until_decided(broker.url, 100)
        broker.stop()  # SIGTERM: Redis writes its append-only file and exits
        time.sleep(2)
        broker.start()
        after_restart = publish_starts(broker.url, 2, 800, 200)

        late = collect_decisions(broker.url, [task_id for task_id, _, _ in after_restart], timeout=180)
        assert len(late) == len(after_restart), f"{len(after_restart) - len(late)} undecided\n{worker.log()}"

        # Published before the restart: queued messages survive in the append-only file,
        # and those the worker had taken (in its taking list or unacknowledged) come back
        # after the visibility timeout. None is lost.
        early = collect_decisions(broker.url, [task_id for task_id, _, _ in in_flight], timeout=90, settle=20)
        print(f"in flight during the restart: {len(early)} of {len(in_flight)} decided")
        assert len(early) == len(in_flight), [start for start in in_flight if start[0] not in early]

        holders, counted, rows = seat_holders(store_url)
        assert len(holders) == counted == rows == 50
        check_decisions_against_store(in_flight + after_restart, {**early, **late}, holders)
        assert worker.process is not None and worker.process.poll() is None
    finally:
        worker.cleanup()
        broker.cleanup()


def test_what_a_dead_worker_had_taken_is_put_back_and_decided(
    fleet: Fleet, store_url: str, redis_url: str
) -> None:
    seed_licenses(store_url, **{"AVTR-TAKE-0001": 10})
    client = redis.Redis.from_url(redis_url)
    # What a worker killed right after BLMOVE leaves behind: its taking list, holding the
    # message it took, and a heartbeat older than the visibility timeout (5 s here).
    abandoned = TAKING_PREFIX + "killed-worker"
    task_id = str(uuid.uuid4())
    client.lpush(abandoned, enrolment_message(task_id, "sitecore\\Orphan", "orphan-1"))
    client.zadd(TAKING_REGISTRY, {abandoned: time.time() - 60})
    client.hset(TAKING_SOURCES, abandoned, "avtor.enrolment")

    live = fleet.worker("take-a", queues="avtor.enrolment")
    decided = collect_decisions(redis_url, [task_id], timeout=60)
    assert decided[task_id]["result"]["outcome"] == "granted", live.log()[-3000:]
    assert client.exists(abandoned) == 0
    assert client.zscore(TAKING_REGISTRY, abandoned) is None
    assert "Put back 1 message(s) a stopped worker had taken" in live.log()

    # The live worker's own taking list is empty between messages, and registered.
    registered = [key for key in client.zrange(TAKING_REGISTRY, 0, -1) if isinstance(key, bytes)]
    [own] = [key for key in registered if key != abandoned.encode()]
    assert client.llen(own) == 0
