"""The old path's baseline: a no-op Celery task, run by a real worker process of the manager's Celery app."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from datetime import datetime
from typing import Any

import redis
from celery import Celery

from bench.figures import Measured
from bench.processes import cpu_seconds
from tests.support.workers import CeleryProcess, avtor_environment

RESULT_KEY_PREFIX = "celery-task-meta-"
# The task and queue of bench/app.py (not imported here: that is the worker's code).
NOOP_TASK = "bench.noop"
NOOP_QUEUE = "bench.noop"


class CeleryBaseline:
    """`celery -A bench.app worker -Q bench.noop` with the manager's settings, and a client sending to it."""

    def __init__(self, redis_url: str, store_url: str, redis_pid: int) -> None:
        self.redis_url = redis_url
        self.redis_pid = redis_pid
        env = avtor_environment(
            database_url=store_url, redis_url=redis_url, license_server_url="http://127.0.0.1:9"
        )
        self.worker = CeleryProcess.worker(env, "bench-noop", NOOP_QUEUE, app="bench.app", loglevel="WARNING")
        self.client = redis.Redis.from_url(redis_url)
        self.app = Celery("bench-client", broker=redis_url, backend=redis_url)
        self.app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])

    def start(self) -> None:
        """Start the worker and wait until it has run tasks (connected, everything loaded)."""
        self.worker.start(wait_for=None)
        self.drain(200, timeout=120)

    def drain(self, count: int, timeout: float) -> Measured:
        """Pre-queued: pause the worker, send `count` tasks, resume it; time until the last result."""
        os.killpg(self.worker.pid, signal.SIGSTOP)
        try:
            ids = [str(uuid.uuid4()) for _ in range(count)]
            with self.app.producer_or_acquire() as producer:
                for task_id in ids:
                    self.app.send_task(
                        NOOP_TASK, kwargs={"n": task_id}, task_id=task_id, queue=NOOP_QUEUE, producer=producer
                    )
        finally:
            cpu = cpu_seconds([self.worker.pid]), cpu_seconds([self.redis_pid])
            began = time.time()
            os.killpg(self.worker.pid, signal.SIGCONT)
        results = self._results(ids, timeout)
        finished = max(datetime.fromisoformat(result["date_done"]).timestamp() for result in results)
        worker_cpu, redis_cpu = cpu_seconds([self.worker.pid]), cpu_seconds([self.redis_pid])
        return Measured(
            count / (finished - began),
            (worker_cpu - cpu[0]) * 1e6 / count,
            (redis_cpu - cpu[1]) * 1e6 / count,
        )

    def _results(self, ids: list[str], timeout: float) -> list[dict[str, Any]]:
        """Every task's stored result, once all are there (polling the last few only, to disturb little)."""
        deadline = time.monotonic() + timeout
        keys = [RESULT_KEY_PREFIX + task_id for task_id in ids]
        while time.monotonic() < deadline:
            if all(value is not None for value in self.client.mget(keys[-20:])):
                values: list[Any] = [
                    value
                    for begin in range(0, len(keys), 1000)
                    for value in self.client.mget(keys[begin : begin + 1000])
                ]
                if all(value is not None for value in values):
                    self.client.unlink(*keys)
                    results = [json.loads(value) for value in values]
                    failed = [result for result in results if result["status"] != "SUCCESS"]
                    if failed:
                        raise RuntimeError(f"{len(failed)} no-op tasks failed, e.g. {failed[0]}")
                    return results
            time.sleep(0.05)
        raise TimeoutError(f"no-op task results still missing after {timeout:g} s")

    def stop(self) -> None:
        self.worker.cleanup()
