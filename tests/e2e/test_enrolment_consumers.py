"""Enrolment consumers in real processes, on real Redis and both stores: races, kills, stops, restarts."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis

from tests.support.consumers import Consumers
from tests.support.ledger import seat_holders, seed_licenses
from tests.support.servers import RedisProcess
from tests.support.starts import (
    Start,
    check_decisions_against_store,
    collect_decisions,
    send_in_background,
    send_starts,
    wait_until_decided,
)
from tests.support.workers import ROOT, CeleryProcess, avtor_environment
from worker.requests_stream import CONSUMER_GROUP, KEPT_KEY, REQUESTS_STREAM, read_kept

# Entries a killed consumer held are taken over after this long.
VISIBILITY = "2s"


def consumer_environment(store_url: str, redis_url: str) -> dict[str, str]:
    return avtor_environment(
        database_url=store_url,
        redis_url=redis_url,
        license_server_url="http://127.0.0.1:9",
        enrolment_visibility_timeout=VISIBILITY,
    )


@pytest.fixture
def consumers(store_url: str, redis_url: str) -> Iterator[Consumers]:
    with Consumers(consumer_environment(store_url, redis_url)) as started:
        yield started


def check_every_start_decided_once(redis_url: str, store_url: str, sent: list[Start], seats: int) -> None:
    decisions = collect_decisions(redis_url, [start.request_id for start in sent], timeout=180, settle=30)
    holders, counted, rows = seat_holders(store_url)
    assert len(holders) == counted == rows == seats
    tally = check_decisions_against_store(sent, decisions, holders)
    assert tally["granted"] == seats
    client = redis.Redis.from_url(redis_url)
    assert client.xlen(REQUESTS_STREAM) == 0, "every decided entry is removed"
    assert client.xpending(REQUESTS_STREAM, CONSUMER_GROUP)["pending"] == 0
    client.close()


def test_consumers_in_several_processes_race_for_seats_and_grant_none_beyond_the_licenses(
    consumers: Consumers, store_url: str, redis_url: str
) -> None:
    seed_licenses(store_url, **{"AVTR-RACE-0001": 60, "AVTR-RACE-0002": 40})
    for name in ("race-a", "race-b", "race-c"):
        consumers.start(name)
    sent: list[Start] = []
    publishers = [
        threading.Thread(target=lambda n=n: sent.extend(send_starts(redis_url, n, 750, 400, 0.002, 25)))
        for n in range(4)
    ]
    for publisher in publishers:
        publisher.start()
    for publisher in publishers:
        publisher.join(timeout=120)
    assert len(sent) == 3000
    check_every_start_decided_once(redis_url, store_url, sent, seats=100)
    logs = consumers.logs()
    assert all(process.running() for process in consumers.processes), logs
    assert "Traceback" not in logs, logs


def test_consumers_killed_mid_stream_lose_no_start_and_double_no_seat(
    consumers: Consumers, store_url: str, redis_url: str
) -> None:
    seed_licenses(store_url, **{"AVTR-KILL-0001": 100})
    first = consumers.start("kill-a")
    consumers.start("kill-b")
    publisher, sent = send_in_background(redis_url, 3000, 400, pause=0.01)

    # Twice, a whole consumer process dies with everything it holds; what it held is taken
    # over by the others after the visibility timeout and decided, never twice.
    before_first = wait_until_decided(redis_url, 300)
    first.kill()
    consumers.start("kill-c")
    before_second = wait_until_decided(redis_url, before_first + 600)
    consumers.processes[1].kill()
    publisher.join(timeout=300)
    assert len(sent) == 3000
    assert before_second < len(sent), "the second kill came after the stream ended"
    check_every_start_decided_once(redis_url, store_url, sent, seats=100)


def test_a_consumer_stopped_mid_stream_settles_its_batch_and_exits_cleanly(
    consumers: Consumers, store_url: str, redis_url: str
) -> None:
    seed_licenses(store_url, **{"AVTR-STOP-0001": 100})
    stopping = consumers.start("stop-a")
    publisher, sent = send_in_background(redis_url, 2000, 400, pause=0.01)
    wait_until_decided(redis_url, 300)

    assert stopping.stop() == 0  # SIGTERM while starts keep coming
    assert "Enrolment consumer stop-a stopped." in stopping.log()
    client = redis.Redis.from_url(redis_url)
    held = client.xpending_range(REQUESTS_STREAM, CONSUMER_GROUP, "-", "+", 10_000, consumername="stop-a")
    assert held == [], "a consumer that was stopped holds nothing"
    client.close()

    consumers.start("stop-b")
    publisher.join(timeout=300)
    check_every_start_decided_once(redis_url, store_url, sent, seats=100)


def test_consumers_carry_on_after_redis_restarts_and_lose_nothing(store_url: str) -> None:
    seed_licenses(store_url, **{"AVTR-RESTART-0001": 50})
    broker = RedisProcess(persistent=True).start()
    try:
        with Consumers(consumer_environment(store_url, broker.url)) as consumers:
            consumer = consumers.start("restart-a")
            early = send_starts(broker.url, 1, 800, 200, pause=0.01, chunk=20)
            wait_until_decided(broker.url, 100)
            broker.stop()  # SIGTERM: Redis writes its append-only file and exits
            time.sleep(2)
            broker.start()
            late = send_starts(broker.url, 2, 800, 200)
            check_every_start_decided_once(broker.url, store_url, early + late, seats=50)
            assert consumer.running(), consumer.log()
            assert "Redis cannot be reached" in consumer.log()
            assert "Deciding resumed" in consumer.log()
    finally:
        broker.cleanup()


def test_a_start_that_keeps_failing_is_set_aside_with_its_reason_and_answered(
    consumers: Consumers, store_url: str, redis_url: str
) -> None:
    seed_licenses(store_url, **{"AVTR-POISON-0001": 5})
    client = redis.Redis.from_url(redis_url)
    client.xgroup_create(REQUESTS_STREAM, CONSUMER_GROUP, id="0", mkstream=True)
    client.xadd(REQUESTS_STREAM, {"request_id": "poison-1", "username": "sitecore\\Poison"})
    # What a start looks like after five consumers died deciding it: delivered six times.
    reply: Any = client.xreadgroup(CONSUMER_GROUP, "crashed", {REQUESTS_STREAM: ">"}, count=1)
    [[_, [(entry_id, _fields)]]] = reply
    for _ in range(5):
        client.xclaim(REQUESTS_STREAM, CONSUMER_GROUP, "crashed", 0, [entry_id])
    time.sleep(2.5)  # idle for longer than the visibility timeout

    consumer = consumers.start("poison-a")
    [decision] = collect_decisions(redis_url, ["poison-1"], timeout=30).values()
    assert decision["outcome"] == "invalid_request"
    assert "could not be decided in 6 deliveries" in decision["message"]
    [kept] = read_kept(client, 10)
    assert (kept["request_id"], kept["deliveries"]) == ("poison-1", 7)
    assert kept["fields"]["username"] == "sitecore\\Poison"
    assert client.xlen(REQUESTS_STREAM) == 0 and client.llen(KEPT_KEY) == 1
    holders, _, _ = seat_holders(store_url)
    assert holders == set(), "a start set aside takes no seat"
    assert "set aside" in consumer.log()
    client.close()


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_stuck_lock_holder_pauses_deciding_which_resumes_by_itself(store_url: str, redis_url: str) -> None:
    seed_licenses(store_url, **{"AVTR-LOCK-0001": 10})
    env = {**consumer_environment(store_url, redis_url), "AVTOR_STORE_LOCK_TIMEOUT": "0.3s"}
    with Consumers(env) as consumers:
        consumer = consumers.start("lock-a")
        holder = psycopg.connect(store_url.replace("postgresql+psycopg://", "postgresql://"))
        try:
            # Another session takes the ledger's lock and does not let go.
            holder.execute("SELECT seats_in_use FROM installation WHERE id = 1 FOR UPDATE")
            sent = send_starts(redis_url, 3, 5, 5)
            consumer.wait_for_log("deciding is paused", timeout=30)
            assert collect_decisions(redis_url, [start.request_id for start in sent], timeout=1) == {}
            assert consumer.running()
        finally:
            holder.rollback()
            holder.close()
        decisions = collect_decisions(redis_url, [start.request_id for start in sent], timeout=30)
        assert {decision["outcome"] for decision in decisions.values()} <= {"granted", "already_enrolled"}
        assert len(decisions) == len(sent)
        consumer.wait_for_log("Deciding resumed")
        assert "lock timeout" in consumer.log()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_editors_are_answered_while_the_license_service_hangs_an_admin_task(
    store_url: str, redis_url: str
) -> None:
    seed_licenses(store_url, **{"AVTR-HANG-0001": 300})
    # A license service that takes connections and never answers.
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(16)
    env = {
        **consumer_environment(store_url, redis_url),
        "AVTOR_LICENSE_SERVER_URL": f"http://127.0.0.1:{hanging.getsockname()[1]}",
        "AVTOR_LICENSE_SERVER_TIMEOUT": "60s",
    }
    admin = CeleryProcess.worker(env, "hang-admin", "avtor.admin", None, "--without-heartbeat")
    try:
        admin.start()
        with Consumers(env) as consumers:
            consumers.start("hang-a")
            refresh = subprocess.run(
                [str(ROOT / ".venv" / "bin" / "avtorlm"), "license", "refresh", "--all", "--no-wait"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert refresh.returncode == 0, refresh.stdout + refresh.stderr
            admin.wait_for_log("avtor.admin.refresh_all", timeout=30)
            sent = send_starts(redis_url, 5, 200, 200)
            decisions = collect_decisions(redis_url, [start.request_id for start in sent], timeout=30)
            assert len(decisions) == 200, consumers.logs()
            # The admin task is still waiting for the license service all the while.
            assert "succeeded" not in admin.log()
    finally:
        admin.kill()  # its task would wait for the license service a minute more
        admin.cleanup()
        hanging.close()
