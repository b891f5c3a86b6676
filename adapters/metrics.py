"""The Prometheus metrics of an installation, read from the store and Redis when scraped.

No process keeps counters in memory: seats, licenses, open alerts and license checks come
from the store (license checks are `license_refreshed` audit events), the stream's figures
from Redis, and enrolment decisions from the hash `avtor:enrol:stats`, which every enrolment
consumer increments in the script that settles its batch. So any number of consumers add
up, and the endpoint can be restarted or run twice without losing a count.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from domain.alerts import AlertKind
from domain.events import AuditEvent, EventKind
from domain.licenses import LicenseStatus, masked_key
from domain.ports import Store
from domain.seat_policy import OverLimitPolicy
from domain.services.status import describe_ledger
from worker.requests_stream import LATENCY_BOUNDS_MS, STATS_KEY, read_stream_state

# A consumer reads at least every 50 ms while it runs; one silent this long is gone or stuck.
ALIVE_WITHIN_MS = 10_000

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LedgerSource:
    """Where the seat ledger is read, and the rules that say what it grants."""

    store: Store
    clock: Callable[[], datetime]
    grace_period: timedelta
    policy: OverLimitPolicy


class InstallationCollector(Collector):
    """Reads the installation's state at every scrape and turns it into metric families."""

    def __init__(self, ledger: LedgerSource, client: redis.Redis) -> None:
        self.ledger = ledger
        self.client = client

    def collect(self) -> Iterator[Metric]:
        """The metric families, read now."""
        yield from self._ledger_metrics()
        yield from self._stream_metrics()

    def _ledger_metrics(self) -> Iterator[Metric]:
        source = self.ledger
        status = describe_ledger(source.store, source.clock(), source.grace_period, source.policy)
        with source.store.reading() as uow:
            checks = uow.events.list(kinds=(EventKind.LICENSE_REFRESHED,))
            alerts = uow.alerts.open()
        counts = status.counts
        yield _gauge("avtor_seats_licensed", "Seats the licenses grant now.", counts.licensed)
        yield _gauge("avtor_seats_allocated", "Seats held by users.", counts.in_use)
        yield _gauge("avtor_seats_free", "Seats licensed and not held.", counts.free)
        yield _gauge(
            "avtor_seats_over_limit", "Users holding a seat beyond the licensed count.", counts.over_limit_by
        )
        labels = ["license", "key"]
        expiry = GaugeMetricFamily(
            "avtor_license_expiry_timestamp_seconds", "When a license expires (absent: never).", labels=labels
        )
        verified = GaugeMetricFamily(
            "avtor_license_last_verified_timestamp_seconds",
            "When the license service last confirmed a license (absent: never).",
            labels=labels,
        )
        grace = GaugeMetricFamily(
            "avtor_license_grace_end_timestamp_seconds",
            "When a license stops granting seats unless the license service confirms it again.",
            labels=labels,
        )
        seats = GaugeMetricFamily("avtor_license_seats", "Seats a license is for.", labels=labels)
        granted = GaugeMetricFamily(
            "avtor_license_seats_granted", "Seats a license grants now.", labels=labels
        )
        state = GaugeMetricFamily(
            "avtor_license_status",
            "1 for a license's status now, 0 for the others.",
            labels=[*labels, "status"],
        )
        for view in status.licenses:
            names = [view.id, masked_key(view.key)]
            if view.expires_at is not None:
                expiry.add_metric(names, view.expires_at.timestamp())
            if view.verified_at is not None:
                verified.add_metric(names, view.verified_at.timestamp())
            if view.grace_ends_at is not None:
                grace.add_metric(names, view.grace_ends_at.timestamp())
            seats.add_metric(names, view.seats)
            granted.add_metric(names, view.seats_granted)
            for each in LicenseStatus:
                state.add_metric([*names, each.value], 1.0 if view.status is each else 0.0)
        yield from (expiry, verified, grace, seats, granted, state)
        results = CounterMetricFamily(
            "avtor_license_checks",
            "Checks of a license with the license service, by result.",
            labels=["result"],
        )
        tally = Counter(check_result(event) for event in checks)
        for result in CHECK_RESULTS:
            results.add_metric([result], tally[result])
        yield results
        raised = GaugeMetricFamily(
            "avtor_alerts_open", "Alerts raised and not yet resolved, by kind.", labels=["kind"]
        )
        open_by_kind = Counter(each.alert.kind for each in alerts)
        for kind in AlertKind:
            raised.add_metric([kind.value], open_by_kind[kind])
        yield raised

    def _stream_metrics(self) -> Iterator[Metric]:
        try:
            state = read_stream_state(self.client)
            stats = {_text(name): int(value) for name, value in self.client.hgetall(STATS_KEY).items()}
        except redis.RedisError as error:
            log.warning("The enrolment stream could not be read for the metrics: %s", error)
            yield _gauge("avtor_enrolment_stream_up", "1 if Redis answered this scrape.", 0)
            return
        yield _gauge("avtor_enrolment_stream_up", "1 if Redis answered this scrape.", 1)
        yield _gauge("avtor_enrolment_waiting", "Editors' starts waiting in the stream.", state.waiting)
        oldest = 0.0 if state.oldest_age_ms is None else state.oldest_age_ms / 1000
        yield _gauge(
            "avtor_enrolment_oldest_waiting_seconds",
            "Age of the oldest entry in the stream (0: none).",
            oldest,
        )
        yield _gauge(
            "avtor_enrolment_consumers_alive",
            "Enrolment consumers that read the stream within the last 10 seconds.",
            len(state.alive(ALIVE_WITHIN_MS)),
        )
        yield _gauge("avtor_enrolment_dead_letters", "Entries set aside and kept.", state.kept)
        decisions = CounterMetricFamily(
            "avtor_enrolment_decisions", "Enrolment decisions written, by outcome.", labels=["outcome"]
        )
        for name, value in sorted(stats.items()):
            if name.startswith("decisions:"):
                decisions.add_metric([name.removeprefix("decisions:")], value)
        yield decisions
        yield _latency(stats)


# What a license check came to, as domain.services.revalidation.CheckOutcome names it.
CHECK_RESULTS = ("verified", "rejected", "could_not_verify")


def check_result(event: AuditEvent) -> str:
    """What the check an audit event records came to."""
    if event.outcome in CHECK_RESULTS:
        return event.outcome
    # Checks recorded before their result was kept with them: by the sentence the
    # administrator reads (domain.services.revalidation.describe_check).
    if "was refused by the license service" in event.detail:
        return "rejected"
    if " is verified" in event.detail:
        return "verified"
    return "could_not_verify"


def _latency(stats: dict[str, int]) -> HistogramMetricFamily:
    buckets: list[tuple[str, float]] = []
    total = 0
    for bound in LATENCY_BOUNDS_MS:
        total += stats.get(f"latency_ms_le:{bound}", 0)
        buckets.append((_seconds(bound), total))
    total += stats.get("latency_ms_le:+Inf", 0)
    buckets.append(("+Inf", total))
    return HistogramMetricFamily(
        "avtor_enrolment_decision_latency_seconds",
        "Time from an entry's arrival in the stream to its decision written, by Redis's clock.",
        buckets=buckets,
        sum_value=stats.get("latency_ms_sum", 0) / 1000,
    )


def _seconds(milliseconds: int) -> str:
    return f"{milliseconds / 1000:g}"


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
