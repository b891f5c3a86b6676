"""`python -m bench`: enrolment decisions against a no-op Celery task, on real Redis, PostgreSQL and SQLite.

For each store it starts two fleets of real worker processes with the manager's
own settings: one on a ledger holding 100 seats, one on a ledger holding
100,000. It measures in rounds, each enrolment figure next to its baseline, and
prints medians; docs/benchmarks.md explains every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from bench.app import NOOP_TASK
from bench.load import Batch, latencies, pre_queue, stream, throughput, wait_for_results
from bench.stores import prepare_store, reset_seats
from config import Settings
from tests.support.servers import RedisProcess, make_redis_url, postgres_server
from tests.support.workers import CeleryProcess, avtor_environment

ENROL_TASK = "avtor.enrol"
SMALL_LEDGER = 100


@dataclass(frozen=True)
class Plan:
    """How much to measure, and with which worker settings."""

    requests: int
    rounds: int
    latency_seconds: float
    large_ledger: int
    nodes: int
    concurrency: int | None
    pool: str | None


@dataclass
class Figures:
    """What one store measured: rates and CPU per task by measurement, latencies, memory."""

    store: str
    rates: dict[str, list[float]] = field(default_factory=dict)
    cpu_ms: dict[str, list[float]] = field(default_factory=dict)
    latency_ms: dict[str, tuple[float, float]] = field(default_factory=dict)
    peak_memory_mb: float = 0.0

    def add(self, label: str, rate: float, cpu_ms: float) -> None:
        self.rates.setdefault(label, []).append(rate)
        self.cpu_ms.setdefault(label, []).append(cpu_ms)

    def rate(self, label: str) -> float:
        return statistics.median(self.rates[label])

    def ratio(self, label: str, base: str) -> float:
        """The median of the round-by-round ratios: each round's figure over that round's baseline."""
        return statistics.median(a / b for a, b in zip(self.rates[label], self.rates[base], strict=True))


class Fleet:
    """Worker processes on one store and one Redis database, with a ledger of a set size."""

    def __init__(self, name: str, store_url: str, redis_url: str, held: int, plan: Plan) -> None:
        self.store_url, self.redis_url, self.held = store_url, redis_url, held
        self.client = redis.Redis.from_url(redis_url)
        env = avtor_environment(
            database_url=store_url, redis_url=redis_url, license_server_url="http://127.0.0.1:9"
        )
        self.nodes = [
            CeleryProcess.worker(
                env,
                f"{name}-{number}",
                "avtor.enrolment",
                plan.concurrency,
                app="bench.app",
                loglevel="WARNING",
                pool=plan.pool,
            )
            for number in range(plan.nodes)
        ]

    def start(self) -> None:
        for node in self.nodes:
            node.start(wait_for=None)
        for task in (NOOP_TASK, ENROL_TASK):  # every process connects and loads before anything is timed
            batch = pre_queue(self.client, task, editors("Warm", 300))
            wait_for_results(self.client, batch.task_ids, timeout=180)
        self.reset()

    def reset(self) -> None:
        reset_seats(self.store_url, self.held)
        self.client.flushdb()

    def pids(self) -> list[int]:
        return [pid for node in self.nodes for pid in [node.pid, *node.pool_pids()]]

    def stop(self) -> None:
        for node in self.nodes:
            node.cleanup()


def editors(prefix: str, count: int, start: int = 0) -> list[dict[str, str]]:
    """Starts of `count` distinct editors, each with a request id of its own, as hosts send them."""
    return [
        {"username": f"sitecore\\{prefix}{number:07d}", "request_id": f"{prefix}-{number}"}
        for number in range(start, start + count)
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its tables."""
    options = _arguments(argv)
    # Stopped with SIGTERM, it still stops the workers and servers it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    plan = Plan(
        requests=options.requests or (200 if options.quick else 3000),
        rounds=options.rounds or (1 if options.quick else 3),
        latency_seconds=2.0 if options.quick else 10.0,
        large_ledger=2_000 if options.quick else 100_000,
        nodes=options.nodes,
        concurrency=options.concurrency,
        pool=options.pool,
    )
    print(_machine(), flush=True)
    results = []
    with _redis(options.redis_url) as (redis_url, redis_pid):
        for store in options.stores.split(","):
            with _stores(store) as (small_url, large_url):
                figures = measure(store, small_url, large_url, redis_url, redis_pid, plan)
                results.append(figures)
                print(table(figures, plan), flush=True)
    if options.json:
        Path(options.json).write_text(json.dumps([vars(figures) for figures in results], indent=2))
    return 0


def measure(
    store: str, small_url: str, large_url: str, redis_url: str, redis_pid: int | None, plan: Plan
) -> Figures:
    """Every figure for one store, measured in rounds so that noise hits baseline and enrolment alike."""
    figures = Figures(store)
    prepare_store(small_url, seats=10**7, held=SMALL_LEDGER)
    prepare_store(large_url, seats=10**7, held=plan.large_ledger)
    small = Fleet("small", small_url, make_redis_url(redis_url, 2), SMALL_LEDGER, plan)
    large = Fleet("large", large_url, make_redis_url(redis_url, 3), plan.large_ledger, plan)
    extra = [redis_pid] if redis_pid else []
    try:
        small.start()
        large.start()
        for number in range(plan.rounds):
            names = editors(f"Round{number}-", plan.requests)
            for label, fleet, task, kwargs, publish in (
                ("baseline, pre-queued", small, NOOP_TASK, names, "queued"),
                ("new editors, pre-queued", small, ENROL_TASK, names, "queued"),
                ("enrolled editors, pre-queued", small, ENROL_TASK, names, "queued"),
                ("new editors, large ledger", large, ENROL_TASK, names, "queued"),
                ("baseline, streamed", small, NOOP_TASK, names, "streamed"),
                ("new editors, streamed", small, ENROL_TASK, names, "streamed"),
                ("enrolled editors, streamed", small, ENROL_TASK, names, "streamed"),
            ):
                if label.startswith("new editors"):
                    fleet.reset()
                rate, cpu = _timed(fleet, task, kwargs, publish, extra)
                figures.add(label, rate, cpu)
            small.reset()
            large.reset()
        offered = figures.rate("baseline, streamed") / 2
        later = editors("Later", max(20, int(offered * plan.latency_seconds)))
        for label in ("new editors", "enrolled editors"):
            batch = stream(small.client, ENROL_TASK, later, offered)
            results = wait_for_results(small.client, batch.task_ids, timeout=600)
            figures.latency_ms[f"{label} at {offered:.0f}/s"] = latencies(batch, results)
        figures.peak_memory_mb = max(_peak_memory_mb(pid) for pid in small.pids() + large.pids())
    finally:
        small.stop()
        large.stop()
    return figures


def _timed(
    fleet: Fleet, task: str, kwargs: list[dict[str, str]], publish: str, extra: list[int]
) -> tuple[float, float]:
    """One measurement: its rate, and the CPU the workers and Redis spent on each task (ms)."""
    pids = fleet.pids() + extra
    before = _cpu_seconds(pids)
    batch: Batch = (
        pre_queue(fleet.client, task, kwargs)
        if publish == "queued"
        else stream(fleet.client, task, kwargs, None)
    )
    results = wait_for_results(fleet.client, batch.task_ids, timeout=900)
    cpu = _cpu_seconds(pids) - before
    failed = [result for result in results if result["status"] != "SUCCESS"]
    if failed:
        raise RuntimeError(f"{len(failed)} tasks failed, e.g. {failed[0]}")
    return throughput(batch, results), 1000 * cpu / len(results)


def table(figures: Figures, plan: Plan) -> str:
    """The figures as a table; each enrolment rate also as a ratio to its baseline in the same round."""
    defaults = Settings()
    lines = [
        f"\n{figures.store}: {plan.nodes} worker process(es), pool {plan.pool or defaults.worker_pool} x "
        f"{plan.concurrency or defaults.worker_concurrency}, "
        f"{plan.rounds} round(s) of {plan.requests:,} requests, medians",
        f"{'measurement':<34} {'per second':>11} {'ratio':>7} {'CPU/task':>10}",
    ]
    for label in figures.rates:
        base = "baseline, streamed" if "streamed" in label else "baseline, pre-queued"
        cpu = statistics.median(figures.cpu_ms[label])
        lines.append(
            f"{label:<34} {figures.rate(label):>11.0f} {figures.ratio(label, base):>7.2f} {cpu:>7.2f} ms"
        )
    cost = figures.ratio("new editors, pre-queued", "new editors, large ledger")
    lines.append(
        f"{f'claim cost, {plan.large_ledger:,} / {SMALL_LEDGER} seats held':<34} {'':>11} {cost:>7.2f}"
    )
    for label, (p50, p99) in figures.latency_ms.items():
        lines.append(f"{'latency, ' + label:<34} p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    lines.append(f"{'peak memory of a worker process':<34} {figures.peak_memory_mb:>11.1f} MB")
    return "\n".join(lines)


def _cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time of these processes so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / tick


def _peak_memory_mb(pid: int) -> float:
    """The peak resident memory (VmHWM) of a process, in MB."""
    with contextlib.suppress(FileNotFoundError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


@contextlib.contextmanager
def _redis(url: str | None) -> Iterator[tuple[str, int | None]]:
    if url:
        yield url, None
        return
    process = RedisProcess().start()
    try:
        assert process.process is not None
        yield process.url, process.process.pid
    finally:
        process.cleanup()


@contextlib.contextmanager
def _stores(kind: str) -> Iterator[tuple[str, str]]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="avtor-bench-") as name:
            folder = Path(name)
            yield f"sqlite:///{folder / 'small.sqlite3'}", f"sqlite:///{folder / 'large.sqlite3'}"
        return
    if kind != "postgresql":
        raise SystemExit(f"unknown store {kind!r}: use sqlite or postgresql")
    with postgres_server() as server:
        yield server.create_database("bench_small"), server.create_database("bench_large")


def _machine() -> str:
    load = os.getloadavg()
    return (
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.system()} {platform.release()}, load {load[0]:.2f}, "
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}"
    )


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts and one round, for a smoke test")
    parser.add_argument("--stores", default="postgresql,sqlite", help="comma-separated: postgresql, sqlite")
    parser.add_argument("--requests", type=int, default=0, help="requests per measurement (default 3000)")
    parser.add_argument("--rounds", type=int, default=0, help="rounds of measurements (default 3)")
    parser.add_argument("--nodes", type=int, default=2, help="worker processes per fleet (default 2)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="tasks at once per worker (default: AVTOR_WORKER_CONCURRENCY)",
    )
    parser.add_argument(
        "--pool",
        choices=["threads", "prefork"],
        default=None,
        help="Celery pool (default: AVTOR_WORKER_POOL)",
    )
    parser.add_argument(
        "--redis-url", help="a Redis to use; database indexes 2 and 3 are emptied (default: start one)"
    )
    parser.add_argument("--json", help="also write the figures to this file")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
