"""What a benchmark run measured, round by round; its medians, ratios and targets as a table."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

NOOP_QUEUED = "no-op stream consumer, pre-queued"
NOOP_STREAMED = "no-op stream consumer, streamed"
CELERY_QUEUED = "no-op Celery task, pre-queued"
NOOP_LATENCY = "no-op stream consumer"

# The targets (docs/benchmarks.md): ratios to the no-op stream consumer, latency, claim cost, memory.
ENROLLED_TARGET = 0.6
NEW_TARGET = 0.4
LATENCY_P99_TARGET_MS = 20.0
CLAIM_COST_TARGET = 1.2
MEMORY_TARGET_MB = 150.0


@dataclass(frozen=True)
class Measured:
    """One measurement: entries decided a second, and the CPU the consumer and Redis spent on each (µs)."""

    rate: float
    consumer_cpu_us: float
    redis_cpu_us: float


def product_label(store: str, editors: str, publishing: str) -> str:
    """The name of a product figure, e.g. `sqlite, new editors, pre-queued`."""
    return f"{store}, {editors} editors, {publishing}"


def large_ledger_label(store: str, held: int) -> str:
    return f"{store}, new editors, pre-queued, {held:,} seats held"


@dataclass
class Figures:
    """Every figure of one run, round by round, with what the run was."""

    stores: list[str]
    large_ledger: int
    rates: dict[str, list[float]] = field(default_factory=dict)
    consumer_cpu_us: dict[str, list[float]] = field(default_factory=dict)
    redis_cpu_us: dict[str, list[float]] = field(default_factory=dict)
    # Latency at half capacity: the offered rate and (p50, p99) in ms, per round.
    latency_rates: dict[str, list[float]] = field(default_factory=dict)
    latency_ms: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    peak_memory_mb: dict[str, float] = field(default_factory=dict)
    # Where each profiled consumer's time went (see bench/profiles.py).
    profiles: list[str] = field(default_factory=list)

    def add(self, label: str, measured: Measured) -> None:
        self.rates.setdefault(label, []).append(measured.rate)
        self.consumer_cpu_us.setdefault(label, []).append(measured.consumer_cpu_us)
        self.redis_cpu_us.setdefault(label, []).append(measured.redis_cpu_us)

    def add_latency(self, label: str, rate: float, p50_p99: tuple[float, float]) -> None:
        self.latency_rates.setdefault(label, []).append(rate)
        self.latency_ms.setdefault(label, []).append(p50_p99)

    def rate(self, label: str) -> float:
        return statistics.median(self.rates[label])

    def ratio(self, label: str, base: str) -> float:
        """The median of the round-by-round ratios: each round's figure over that round's `base`."""
        return statistics.median(a / b for a, b in zip(self.rates[label], self.rates[base], strict=True))

    def claim_cost(self, store: str) -> float:
        """How much longer a claim takes with the large ledger than with 100 seats held (rate over rate)."""
        return self.ratio(
            product_label(store, "new", "pre-queued"), large_ledger_label(store, self.large_ledger)
        )

    def latency(self, label: str) -> tuple[float, float]:
        """Medians over the rounds of p50 and p99, in ms."""
        rounds = self.latency_ms[label]
        return statistics.median(p50 for p50, _ in rounds), statistics.median(p99 for _, p99 in rounds)

    def targets(self) -> list[tuple[str, str, bool]]:
        """Each target: what it asks, what was measured, and whether it is met."""
        found = []
        for store in self.stores:
            for editors, target in (("enrolled", ENROLLED_TARGET), ("new", NEW_TARGET)):
                for publishing, base in (("pre-queued", NOOP_QUEUED), ("streamed", NOOP_STREAMED)):
                    ratio = self.ratio(product_label(store, editors, publishing), base)
                    found.append(
                        (
                            f"{store}, {editors} editors, {publishing} >= {target}x",
                            f"{ratio:.2f}x",
                            ratio >= target,
                        )
                    )
            for editors in ("new", "enrolled"):
                _, p99 = self.latency(f"{store}, {editors} editors")
                found.append(
                    (
                        f"{store}, {editors} editors, p99 at half capacity <= {LATENCY_P99_TARGET_MS:g} ms",
                        f"{p99:.1f} ms",
                        p99 <= LATENCY_P99_TARGET_MS,
                    )
                )
            cost = self.claim_cost(store)
            found.append(
                (
                    f"{store}, claim cost {self.large_ledger:,} / 100 seats held <= {CLAIM_COST_TARGET}",
                    f"{cost:.2f}",
                    cost <= CLAIM_COST_TARGET,
                )
            )
            memory = self.peak_memory_mb[f"{store} enrolment consumers"]
            found.append(
                (
                    f"{store}, consumer peak RSS <= {MEMORY_TARGET_MB:g} MB",
                    f"{memory:.1f} MB",
                    memory <= MEMORY_TARGET_MB,
                )
            )
        return found

    def table(self) -> str:
        """Every figure: medians over the rounds, ratios to the no-op stream consumer of the same round."""
        width = max(len(label) for label in self.rates) + 2
        lines = [
            f"{'measurement':<{width}}{'per second':>11}{'ratio':>8}{'consumer CPU':>14}{'Redis CPU':>11}",
            f"{'':<{width}}{'':>11}{'':>8}{'µs/entry':>14}{'µs/entry':>11}",
        ]
        for label in self.rates:
            base = NOOP_STREAMED if label.endswith("streamed") else NOOP_QUEUED
            lines.append(
                f"{label:<{width}}{self.rate(label):>11,.0f}{self.ratio(label, base):>8.2f}"
                f"{statistics.median(self.consumer_cpu_us[label]):>14.0f}"
                f"{statistics.median(self.redis_cpu_us[label]):>11.0f}"
            )
        lines.append("")
        for store in self.stores:
            lines.append(
                f"claim cost, {store}, {self.large_ledger:,} / 100 seats held: {self.claim_cost(store):.2f}"
            )
        for label in self.latency_ms:
            p50, p99 = self.latency(label)
            rate = statistics.median(self.latency_rates[label])
            lines.append(
                f"latency, {label}, at {rate:,.0f}/s (half capacity): p50 {p50:.1f} ms, p99 {p99:.1f} ms"
            )
        for label, megabytes in self.peak_memory_mb.items():
            lines.append(f"peak memory (VmHWM), {label}: {megabytes:.1f} MB")
        lines.append("")
        for target, measured, met in self.targets():
            lines.append(f"target {target}: {measured}, {'met' if met else 'NOT met'}")
        return "\n".join(lines)

    def rounds(self) -> str:
        """The round-by-round rates behind the medians."""
        width = max(len(label) for label in self.rates) + 2
        lines = [
            f"{label:<{width}}" + ", ".join(f"{rate:,.0f}" for rate in rates)
            for label, rates in self.rates.items()
        ]
        lines += [
            f"{'latency, ' + label:<{width}}" + ", ".join(f"{p50:.1f}/{p99:.1f} ms" for p50, p99 in rounds)
            for label, rounds in self.latency_ms.items()
        ]
        return "\n".join(lines)
