"""AVTOR_LOG_FORMAT=json: every process, started for real, writes one JSON object per line and no secret."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.console import ConsoleProcess
from tests.support.consumers import ConsumerProcess
from tests.support.ledger import seed_licenses
from tests.support.license_server import LicenseServerProcess, key_entry, license_server
from tests.support.manager import Manager, celery_client
from tests.support.servers import RedisServer
from tests.support.starts import collect_decisions, send_starts
from tests.support.stores import migrated_engine
from tests.support.workers import CeleryProcess, avtor_environment

KEY = "AVTR-JSON-LOGS-0007"
ACTOR = "ada (e2e)"
# Celery writes its shutdown notice straight to stderr, past logging (documented in docs).
CELERY_SHUTDOWN_NOTICE = re.compile(r"^worker: (Warm|Cold) shutdown \(MainProcess\)$")


def json_lines(log: str, role: str) -> list[dict[str, Any]]:
    """Each line of `log` as a JSON object naming `role`, a level and a timestamp; fails on any other line."""
    records = []
    for line in log.splitlines():
        if not line.strip() or CELERY_SHUTDOWN_NOTICE.match(line):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}\n{log}")
        assert record["role"] == role, line
        assert record["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}, line
        assert record["timestamp"].endswith("+00:00"), line
        records.append(record)
    assert records, f"the {role} logged nothing"
    assert KEY not in log, "a full license key is in the log"
    return records


@pytest.fixture(scope="module")
def server() -> Iterator[LicenseServerProcess]:
    with license_server([key_entry(KEY, 7, expires_at="2031-06-30T23:59:59Z")]) as running:
        yield running


@pytest.fixture
def env(tmp_path: Path, redis_service: RedisServer, server: LicenseServerProcess) -> dict[str, str]:
    redis_service.flush()
    store_url = f"sqlite:///{tmp_path / 'avtor.sqlite3'}"
    migrated_engine(store_url).dispose()
    return avtor_environment(
        log_format="json",
        database_url=store_url,
        redis_url=redis_service.url,
        license_server_url=server.url,
        license_server_public_key=server.public_key,
    )


def test_the_enrolment_consumer_logs_each_decided_batch_as_json_with_counts_and_timing(
    env: dict[str, str], redis_service: RedisServer
) -> None:
    seed_licenses(env["AVTOR_DATABASE_URL"], **{KEY: 2})
    consumer = ConsumerProcess(env, "json-logs")
    try:
        consumer.start(timeout=30)
        sent = send_starts(redis_service.url, 0, 5, 5, 0.0, 5)
        collect_decisions(redis_service.url, [start.request_id for start in sent], timeout=30)
        consumer.stop()
        records = json_lines(consumer.log(), "enrolment-consumer")
    finally:
        consumer.cleanup()
    batches = [record for record in records if record.get("event") == "enrolment_batch"]
    assert batches, records
    assert sum(batch["decided"] for batch in batches) == len(sent)
    assert sum(batch["entries"] for batch in batches) == len(sent)
    assert all(batch["duration_ms"] >= 0 for batch in batches)
    outcomes: dict[str, int] = {}
    for batch in batches:
        for outcome, count in batch["outcomes"].items():
            outcomes[outcome] = outcomes.get(outcome, 0) + count
    assert outcomes.get("granted") and sum(outcomes.values()) == len(sent)


def test_the_admin_worker_and_beat_log_json_and_a_license_check_names_its_result(
    env: dict[str, str], redis_service: RedisServer, tmp_path: Path
) -> None:
    worker = CeleryProcess(
        env, "--quiet", *CeleryProcess.worker(env, "json", queues="avtor.admin", concurrency=1).arguments
    )
    beat = CeleryProcess(env, "--quiet", *CeleryProcess.beat(env, tmp_path).arguments, name="beat")
    try:
        worker.start(wait_for="ready.", timeout=40)
        beat.start(wait_for="beat: Starting", timeout=40)
        manager = Manager(celery_client(redis_service.url), worker)
        assert manager.call("avtor.admin.accept_eula", accepted_by="Ada Admin", actor=ACTOR)["ok"]
        added = manager.call("avtor.admin.add_license", license_key=KEY, actor=ACTOR)["license"]
        refreshed = manager.call("avtor.admin.refresh_license", license_id=added["id"], actor=ACTOR)
        assert refreshed["outcome"] == "verified", refreshed
        worker.stop()
        beat.stop()
        worker_records = json_lines(worker.log(), "worker")
        json_lines(beat.log(), "beat")
    finally:
        worker.cleanup()
        beat.cleanup()
    checks = [record for record in worker_records if record.get("event") == "license_check"]
    assert checks and checks[-1]["result"] == "verified", worker_records
    assert checks[-1]["license"] == "…0007"


def test_the_console_and_its_http_server_log_json(env: dict[str, str]) -> None:
    console = ConsoleProcess(env)
    try:
        console.start()
        assert requests.get(console.url + "/", timeout=10, allow_redirects=False).status_code < 500
        console.stop()
        records = json_lines(console.log(), "console")
    finally:
        console.cleanup()
    loggers = {record["logger"] for record in records}
    assert any(name.startswith("uvicorn") for name in loggers), records
    assert any("console is at" in record["message"] for record in records), records
