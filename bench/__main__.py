"""`python -m bench`: the enrolment consumer against the transport's own limit, on SQLite and PostgreSQL.

Every process is real: a Redis server; the baselines, a no-op stream consumer
and a no-op Celery task; and `avtor-enrolment-consumer` processes, one per store
and ledger size, each reading the stream of a Redis database of its own. It
measures in rounds, each round measuring the baselines and then every figure of
the product, and prints medians; a ratio is a round's figure over the same
round's no-op stream consumer. docs/benchmarks.md explains every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from bench.celery_baseline import CeleryBaseline
from bench.figures import (
    CELERY_QUEUED,
    NOOP_LATENCY,
    NOOP_QUEUED,
    NOOP_STREAMED,
    Figures,
    Measured,
    large_ledger_label,
    product_label,
)
from bench.load import Start, starts
from bench.measurements import MeasuredConsumer
from bench.noop_consumer import READY as NOOP_READY
from bench.processes import ModuleProcess, peak_memory_mb
from bench.profiles import recording, summary
from bench.stores import prepare_store, refresh_statistics, reset_seats
from config import Settings
from tests.support.consumers import ConsumerProcess
from tests.support.servers import RedisProcess, make_redis_url, postgres_server
from tests.support.workers import avtor_environment

SMALL_LEDGER = 100
# The stream's key names are fixed: each consumer reads a Redis database of its own.
NOOP_DB, CELERY_DB, FIRST_STORE_DB = 1, 2, 3
WARM_UP = 500


@dataclass(frozen=True)
class Plan:
    """How much to measure."""

    entries: int
    celery_tasks: int
    rounds: int
    latency_seconds: float
    lead_in_seconds: float
    large_ledger: int
    batch_size: int
    stores: tuple[str, ...]
    postgresql_options: str | None = None
    py_spy: str | None = None
    profile_dir: str | None = None

    @property
    def timeout(self) -> float:
        """How long one measurement may take before the run fails."""
        return 120 + self.entries / 200


class Ledgers:
    """One kind of store with two ledgers, 100 seats held and many, and an enrolment consumer on each."""

    def __init__(self, kind: str, small_url: str, large_url: str, large_held: int) -> None:
        self.kind = kind
        self.urls = {SMALL_LEDGER: small_url, large_held: large_url}
        self.large_held = large_held
        self.processes: list[ConsumerProcess] = []
        self.consumers: dict[int, MeasuredConsumer] = {}

    def start(self, redis_url: str, redis_pid: int, first_db: int, batch_size: int) -> None:
        """Fill both ledgers, start a consumer on each, and let each decide a few starts before timing."""
        for db, (held, url) in enumerate(self.urls.items(), start=first_db):
            prepare_store(url, seats=10**7, held=held)
            env = avtor_environment(
                database_url=url,
                redis_url=make_redis_url(redis_url, db),
                license_server_url="http://127.0.0.1:9",
                enrolment_batch_size=str(batch_size),
            )
            process = ConsumerProcess(env, f"bench-{self.kind}-{held}", "--log-level", "WARNING")
            self.processes.append(process)
            process.start(wait_for=None)
            self.consumers[held] = MeasuredConsumer(redis_url, db, process.pid, redis_pid)
        for held, consumer in self.consumers.items():
            consumer.drain(starts("Warm", "warm", WARM_UP), "granted", timeout=120)
            consumer.drain(starts("Warm", "warm-again", WARM_UP), "already_enrolled", timeout=120)
            self.reset(held)

    def reset(self, held: int = SMALL_LEDGER) -> None:
        """Take back every seat granted since the ledger was filled (not timed)."""
        reset_seats(self.urls[held], held)

    @property
    def small(self) -> MeasuredConsumer:
        return self.consumers[SMALL_LEDGER]

    @property
    def large(self) -> MeasuredConsumer:
        return self.consumers[self.large_held]

    def peak_memory_mb(self) -> float:
        return max(peak_memory_mb(process.pid) for process in self.processes)

    def stop(self) -> None:
        for process in self.processes:
            process.cleanup()


def measure_baselines(
    number: int, plan: Plan, noop: MeasuredConsumer, celery: CeleryBaseline, figures: Figures
) -> float:
    """The round's baselines (no-op stream consumer, Celery task); returns the rate streams are offered at."""
    queued = noop.drain(
        starts(f"N{number}-", f"r{number}-noop-q", plan.entries), "already_enrolled", plan.timeout
    )
    figures.add(NOOP_QUEUED, queued)
    # Streamed figures offer the rate the transport carries at most: a consumer that falls short falls behind.
    offered = queued.rate
    steady = starts(f"N{number}-", f"r{number}-noop-s", plan.entries)
    streamed = noop.stream(steady, offered, "already_enrolled", plan.timeout)
    figures.add(NOOP_STREAMED, streamed)
    rate = min(queued.rate, streamed.rate) / 2
    batch = starts(f"N{number}-", f"r{number}-noop-l", latency_entries(plan, rate))
    latency = noop.latencies(batch, rate, "already_enrolled", plan.timeout, lead_in(plan, rate))
    figures.add_latency(NOOP_LATENCY, rate, latency)
    figures.add(CELERY_QUEUED, celery.drain(plan.celery_tasks, plan.timeout))
    return offered


def lead_in(plan: Plan, rate: float) -> int:
    """How many entries bring a consumer from idle to steady before latency is counted."""
    return int(rate * plan.lead_in_seconds)


def latency_entries(plan: Plan, rate: float) -> int:
    """How many entries a latency measurement sends at `rate`, lead-in included."""
    return lead_in(plan, rate) + max(100, int(rate * plan.latency_seconds))


def measure_store(number: int, plan: Plan, ledgers: Ledgers, offered: float, figures: Figures) -> None:
    """The round's figures of one store: pre-queued, streamed, the large ledger, latency at half capacity.

    New editors claim seats; the same editors then start again as enrolled editors.
    Between the two the store's statistics are brought up to date (see refresh_statistics).
    """
    kind, small, timeout = ledgers.kind, ledgers.small, plan.timeout
    queued = starts(f"Q{number}-", f"r{number}-{kind}-q", plan.entries)
    steady = starts(f"S{number}-", f"r{number}-{kind}-s", plan.entries)
    capacity: dict[str, list[float]] = {"new": [], "enrolled": []}

    def figure(editors: str, publishing: str, measured: Measured) -> None:
        figures.add(product_label(kind, editors, publishing), measured)
        capacity[editors].append(measured.rate)

    ledgers.reset()
    figure("new", "pre-queued", small.drain(queued, "granted", timeout))
    refresh_statistics(ledgers.urls[SMALL_LEDGER])
    figure("enrolled", "pre-queued", small.drain(_again(queued), "already_enrolled", timeout))
    ledgers.reset(ledgers.large_held)
    figures.add(large_ledger_label(kind, ledgers.large_held), ledgers.large.drain(queued, "granted", timeout))
    ledgers.reset(ledgers.large_held)

    ledgers.reset()
    figure("new", "streamed", small.stream(steady, offered, "granted", timeout))
    refresh_statistics(ledgers.urls[SMALL_LEDGER])
    figure("enrolled", "streamed", small.stream(_again(steady), offered, "already_enrolled", timeout))

    ledgers.reset()
    granted = 0
    for editors, outcome in (("new", "granted"), ("enrolled", "already_enrolled")):
        # Half the capacity this round measured: the lower of pre-queued and streamed.
        rate = min(capacity[editors]) / 2
        count = latency_entries(plan, rate)
        batch = starts(f"L{number}-", f"r{number}-{kind}-l-{editors}", count, distinct=granted or None)
        granted = granted or count
        latency = small.latencies(batch, rate, outcome, timeout, lead_in(plan, rate))
        figures.add_latency(f"{kind}, {editors} editors", rate, latency)
        refresh_statistics(ledgers.urls[SMALL_LEDGER])
    ledgers.reset()


def _again(batch: Sequence[Start]) -> list[Start]:
    """The same editors starting again, under new request ids."""
    return [Start(f"{start.request_id}-again", start.username) for start in batch]


def run(plan: Plan, redis_url: str, redis_pid: int, stack: contextlib.ExitStack) -> Figures:
    """Start every process, measure every round, and read the processes' peak memory."""
    figures = Figures(list(plan.stores), plan.large_ledger)
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="avtor-bench-")))
    noop_process = ModuleProcess(
        "bench.noop_consumer",
        "--redis-url",
        make_redis_url(redis_url, NOOP_DB),
        "--batch-size",
        str(plan.batch_size),
    )
    stack.callback(noop_process.cleanup)
    noop_process.start(NOOP_READY)
    noop = MeasuredConsumer(redis_url, NOOP_DB, noop_process.pid, redis_pid)
    noop.drain(starts("Warm", "warm", WARM_UP), "already_enrolled", timeout=60)

    celery_store = f"sqlite:///{folder / 'celery.sqlite3'}"
    prepare_store(celery_store, seats=10, held=0)
    celery = CeleryBaseline(make_redis_url(redis_url, CELERY_DB), celery_store, redis_pid)
    stack.callback(celery.stop)
    celery.start()

    all_ledgers = []
    for index, kind in enumerate(plan.stores):
        small_url, large_url = stack.enter_context(_store_urls(kind, folder, plan.postgresql_options))
        ledgers = Ledgers(kind, small_url, large_url, plan.large_ledger)
        stack.callback(ledgers.stop)
        ledgers.start(redis_url, redis_pid, FIRST_STORE_DB + 2 * index, plan.batch_size)
        all_ledgers.append(ledgers)

    for number in range(plan.rounds):
        began = time.monotonic()
        offered = measure_baselines(number, plan, noop, celery, figures)
        for ledgers in all_ledgers:
            measure_store(number, plan, ledgers, offered, figures)
        print(
            f"round {number + 1} of {plan.rounds}: {time.monotonic() - began:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    for ledgers in all_ledgers:
        figures.peak_memory_mb[f"{ledgers.kind} enrolment consumers"] = ledgers.peak_memory_mb()
    figures.peak_memory_mb["no-op stream consumer"] = peak_memory_mb(noop.pid)
    if plan.py_spy:
        figures.profiles = profile(plan, plan.py_spy, noop, all_ledgers, Path(plan.profile_dir or folder))
    return figures


def profile(
    plan: Plan, py_spy: str, noop: MeasuredConsumer, all_ledgers: list[Ledgers], folder: Path
) -> list[str]:
    """Record each consumer with py-spy while it drains a backlog; where their time went.

    After the timed rounds, so that py-spy (which stops a process at every sample)
    slows no figure of the table.
    """
    folder.mkdir(parents=True, exist_ok=True)

    def profiled(consumer: MeasuredConsumer, batch: list[Start], outcome: str, name: str) -> str:
        output = folder / f"{name}.txt"
        consumer.drain(batch, outcome, plan.timeout, running=recording(py_spy, consumer.pid, output))
        return summary(output)

    summaries = [profiled(noop, starts("P-", "p-noop", plan.entries), "already_enrolled", "no-op-consumer")]
    for ledgers in all_ledgers:
        batch = starts("P-", f"p-{ledgers.kind}", plan.entries)
        ledgers.reset()
        summaries.append(profiled(ledgers.small, batch, "granted", f"{ledgers.kind}-new-editors"))
        refresh_statistics(ledgers.urls[SMALL_LEDGER])
        summaries.append(
            profiled(ledgers.small, _again(batch), "already_enrolled", f"{ledgers.kind}-enrolled-editors")
        )
        ledgers.reset()
    return summaries


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    options = _arguments(argv)
    # Stopped with SIGTERM, it still stops the processes and servers it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    plan = Plan(
        entries=options.entries or (300 if options.quick else 10_000),
        celery_tasks=options.celery_tasks or (100 if options.quick else 3_000),
        rounds=options.rounds or (1 if options.quick else 4),
        latency_seconds=0.3 if options.quick else 3.0,
        lead_in_seconds=0.1 if options.quick else 0.5,
        large_ledger=2_000 if options.quick else 100_000,
        batch_size=Settings().enrolment_batch_size,
        stores=tuple(options.stores.split(",")),
        postgresql_options=options.postgresql_options,
        py_spy=options.py_spy,
        profile_dir=options.profile_dir,
    )
    started = time.monotonic()
    print(_machine(), flush=True)
    print(
        f"{plan.rounds} round(s) of {plan.entries:,} entries a figure ({plan.celery_tasks:,} Celery tasks), "
        f"batch size {plan.batch_size}, latency over {plan.latency_seconds:g} s, medians of the rounds",
        flush=True,
    )
    with contextlib.ExitStack() as stack:
        redis_url, redis_pid = stack.enter_context(_redis())
        figures = run(plan, redis_url, redis_pid, stack)
    print(figures.table())
    print("\nround by round (per second)")
    print(figures.rounds())
    for text in figures.profiles:
        print(f"\nprofile, {text}")
    load = os.getloadavg()
    print(
        f"\nthe run took {time.monotonic() - started:.0f} s; "
        f"load at the end {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}"
    )
    if options.json:
        Path(options.json).write_text(
            json.dumps({"plan": asdict(plan), "figures": asdict(figures)}, indent=2)
        )
    return 0


@contextlib.contextmanager
def _redis() -> Iterator[tuple[str, int]]:
    """A Redis server of the benchmark's own (it sets keyspace notifications while measuring latency)."""
    process = RedisProcess().start()
    try:
        assert process.process is not None
        yield process.url, process.process.pid
    finally:
        process.cleanup()


@contextlib.contextmanager
def _store_urls(kind: str, folder: Path, postgresql_options: str | None) -> Iterator[tuple[str, str]]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'small.sqlite3'}", f"sqlite:///{folder / 'large.sqlite3'}"
        return
    if kind != "postgresql":
        raise SystemExit(f"unknown store {kind!r}: use sqlite or postgresql")
    with postgres_server() as server:
        urls = [make_url(server.create_database(purpose)) for purpose in ("bench_small", "bench_large")]
        if postgresql_options:
            urls = [url.update_query_dict({"options": postgresql_options}) for url in urls]
        small, large = (url.render_as_string(hide_password=False) for url in urls)
        yield small, large


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
    parser.add_argument("--stores", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--entries", type=int, default=0, help="entries per figure (default 10,000)")
    parser.add_argument(
        "--celery-tasks", type=int, default=0, help="tasks for the Celery baseline (default 3,000)"
    )
    parser.add_argument("--rounds", type=int, default=0, help="rounds of measurements (default 4)")
    parser.add_argument("--json", help="also write every figure, round by round, to this file")
    parser.add_argument(
        "--postgresql-options",
        help="settings for the consumers' PostgreSQL sessions, e.g. '-c plan_cache_mode=force_custom_plan'",
    )
    parser.add_argument(
        "--py-spy", help="a py-spy executable: after the rounds, profile each consumer draining a backlog"
    )
    parser.add_argument("--profile-dir", help="where py-spy's raw profiles go (default: a temporary folder)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
