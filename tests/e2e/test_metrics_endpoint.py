"""The Prometheus endpoint (`avtorlm metrics-serve`) after enrolments on two real consumer processes."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cli import AVTORLM, Avtorlm
from tests.support.consumers import Consumers
from tests.support.ledger import seat_holders, seed_licenses
from tests.support.starts import Start, check_decisions_against_store, collect_decisions, send_starts
from tests.support.workers import ROOT, avtor_environment
from worker.requests_stream import REQUESTS_STREAM

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class MetricsServer:
    """`avtorlm metrics-serve` as a child process on a free port of the loopback."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.log_path = Path(tempfile.mkstemp(prefix="avtor-metrics-", suffix=".log")[1])
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(AVTORLM), "metrics-serve", "--port", str(self.port)],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while "Serving Prometheus metrics" not in self.log():
            assert self.process.poll() is None, self.log()
            assert time.monotonic() < deadline, self.log()
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def scrape(self) -> Samples:
        """Every sample of one scrape, by name and labels."""
        answer = requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=10)
        answer.raise_for_status()
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples
        }

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(timeout=30)


@pytest.fixture
def environment(store_url: str, redis_url: str) -> dict[str, str]:
    return avtor_environment(
        database_url=store_url, redis_url=redis_url, license_server_url="http://127.0.0.1:9"
    )


@pytest.fixture
def metrics(environment: dict[str, str]) -> Iterator[MetricsServer]:
    server = MetricsServer(environment)
    yield server
    if server.process.poll() is None:
        server.stop()


def instant(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_the_metrics_after_enrolments_on_two_consumers_match_avtorlm_status(
    environment: dict[str, str], store_url: str, redis_url: str, metrics: MetricsServer
) -> None:
    seed_licenses(store_url, **{"AVTR-METR-0001": 20, "AVTR-METR-0002": 10})
    sent: list[Start] = []
    with Consumers(environment) as consumers:
        consumers.start("metrics-a")
        consumers.start("metrics-b")
        publishers = [
            threading.Thread(target=lambda n=n: sent.extend(send_starts(redis_url, n, 150, 45, 0.001, 25)))
            for n in range(2)
        ]
        for publisher in publishers:
            publisher.start()
        for publisher in publishers:
            publisher.join(timeout=60)
        # One entry no decision can be written for: it is set aside.
        client = redis.Redis.from_url(redis_url)
        client.xadd(REQUESTS_STREAM, {"junk": "x"})
        decisions = collect_decisions(redis_url, [start.request_id for start in sent], timeout=60)
        deadline = time.monotonic() + 30
        while client.xlen(REQUESTS_STREAM) or not client.llen("avtor:enrol:dead-letters"):
            assert time.monotonic() < deadline, consumers.logs()
            time.sleep(0.05)
        client.close()
        holders, _, _ = seat_holders(store_url)
        tally = check_decisions_against_store(sent, decisions, holders)

        samples = metrics.scrape()
        status = Avtorlm(environment).json("status")

    assert samples[("avtor_seats_licensed", ())] == status["seats_licensed"] == 30
    assert samples[("avtor_seats_allocated", ())] == status["seats_in_use"] == 30
    assert samples[("avtor_seats_free", ())] == status["seats_free"] == 0
    assert samples[("avtor_seats_over_limit", ())] == status["over_limit_by"] == 0
    for license in status["licenses"]:
        names = (("key", license["key"]), ("license", license["id"]))
        assert samples[("avtor_license_seats", names)] == license["seats"]
        assert samples[("avtor_license_seats_granted", names)] == license["seats_granted"]
        assert samples[("avtor_license_expiry_timestamp_seconds", names)] == pytest.approx(
            instant(license["expires_at"]), abs=1
        )
        assert samples[("avtor_license_last_verified_timestamp_seconds", names)] == pytest.approx(
            instant(license["last_verified_at"]), abs=1
        )
        assert samples[("avtor_license_status", (*names, ("status", license["status"])))] == 1
        assert samples[("avtor_license_status", (*names, ("status", "expired")))] == 0

    # Both consumers' counts add up to every decision the hosts received.
    decided = {
        dict(labels)["outcome"]: value
        for (name, labels), value in samples.items()
        if name == "avtor_enrolment_decisions_total"
    }
    assert decided == tally
    assert tally["granted"] == 30 and tally["no_seats"] > 0
    settled = len(sent) + 1
    assert samples[("avtor_enrolment_decision_latency_seconds_count", ())] == settled
    assert samples[("avtor_enrolment_decision_latency_seconds_bucket", (("le", "+Inf"),))] == settled
    assert samples[("avtor_enrolment_decision_latency_seconds_sum", ())] > 0

    enrolment = status["enrolment"]
    assert samples[("avtor_enrolment_stream_up", ())] == 1
    assert samples[("avtor_enrolment_waiting", ())] == enrolment["waiting"] == 0
    assert samples[("avtor_enrolment_oldest_waiting_seconds", ())] == 0
    assert samples[("avtor_enrolment_dead_letters", ())] == enrolment["entries_set_aside"] == 1
    assert samples[("avtor_enrolment_consumers_alive", ())] == enrolment["consumers_alive"] == 2
    assert samples[("avtor_license_checks_total", (("result", "verified"),))] == 0
    assert metrics.stop() == 0


def test_the_waiting_entries_and_the_oldest_ones_age_show_while_no_consumer_runs(
    redis_url: str, metrics: MetricsServer
) -> None:
    client = redis.Redis.from_url(redis_url)
    client.xadd(REQUESTS_STREAM, {"request_id": "r-1", "username": "bob"})
    time.sleep(0.3)
    client.xadd(REQUESTS_STREAM, {"request_id": "r-2", "username": "eve"})
    client.close()
    samples = metrics.scrape()
    assert samples[("avtor_enrolment_waiting", ())] == 2
    assert samples[("avtor_enrolment_oldest_waiting_seconds", ())] >= 0.3
    assert samples[("avtor_enrolment_consumers_alive", ())] == 0
