"""The enrolment consumer: decides the editors' starts that hosts add to the Redis stream.

One process is one consumer of the group `avtor-enrolment`; run several to share
the work. Each round it takes what waits (up to the batch size), decides the whole
batch through the domain's use case (one read for editors who hold seats, one short
locked transaction for the rest), then writes every decision, acknowledges and
removes the entries in one Redis transaction.

Nothing accepted is lost and nothing is decided twice in effect:
- an entry is removed only in the transaction that writes its decision;
- a consumer that dies leaves its entries pending; another takes them over after the
  visibility timeout, and a start decided before the death is answered again from
  its audit event (its request id), never with a second seat;
- an entry that keeps failing is set aside after a few deliveries, with its reason;
- while the store or Redis cannot be reached the consumer pauses, holding what it
  took, and goes on by itself when they are back.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import FrameType
from typing import Any, Protocol

import redis

from adapters.sql import TRANSIENT_STORE_ERRORS
from config import Settings, SettingsError, load_settings
from config.logs import configure_logging
from config.settings import DEVELOPMENT_MODE_NOTICE
from domain.enrolment import EnrolmentDecision, EnrolmentRequest, InvalidEnrolment, Outcome
from domain.moments import format_instant, utc_now
from domain.seat_policy import OverLimitPolicy
from domain.services.enrolment import enrol_editors
from worker.entries import kept_entry, read_entry, request_id_of
from worker.requests_stream import REQUESTS_STREAM, Answer, Entry, RequestStream, Settlement

log = logging.getLogger("avtor.enrolment")

# Redis restarting, loading its data, or out of reach.
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)

Decide = Callable[[Sequence[EnrolmentRequest], datetime], list[EnrolmentDecision]]


class Stream(Protocol):
    """What a consumer needs of the hosts' stream (worker.requests_stream.RequestStream in Redis)."""

    consumer: str

    def ensure_group(self) -> None: ...

    def read(self, count: int) -> list[Entry]: ...

    def reclaim(self, count: int, min_idle_ms: int, cursor: str) -> tuple[str, list[Entry]]: ...

    def keep_holding(self, entry_ids: Sequence[str]) -> None: ...

    def settle(self, settlement: Settlement) -> None: ...

    def forget_departed(self, idle_ms: int) -> list[str]: ...


@dataclass(frozen=True)
class ConsumerOptions:
    """How one consumer reads and decides."""

    batch_size: int = 100
    max_deliveries: int = 5
    visibility_timeout: timedelta = timedelta(seconds=30)
    # After a stop is asked for, how long a consumer still tries to finish the batch in hand.
    stop_grace: timedelta = timedelta(seconds=10)
    report_every: timedelta = timedelta(minutes=1)
    # How long an idle consumer pauses before it reads again (see idle_pause).
    busy_idle_pause: timedelta = timedelta(milliseconds=10)
    quiet_idle_pause: timedelta = timedelta(milliseconds=50)
    # Reads in a row that found nothing before the consumer counts as quiet (about a second).
    quiet_after_reads: int = 100

    def idle_pause(self, idle_reads: int) -> float:
        """Seconds to pause after `idle_reads` reads in a row found nothing.

        0.5 ms, doubling up to 10 ms: under load the next read follows almost at once.
        After about a second with nothing to do, 50 ms: a quiet consumer costs well under
        1% of a core, and the first start after a lull waits 50 ms at most.
        """
        if idle_reads > self.quiet_after_reads:
            return self.quiet_idle_pause.total_seconds()
        return min(self.busy_idle_pause.total_seconds(), 0.0005 * 2 ** min(idle_reads - 1, 10))

    @property
    def sweep_every(self) -> float:
        """How often to look for entries held too long by consumers that went away, in seconds."""
        return max(0.5, min(30.0, self.visibility_timeout.total_seconds() / 4))


class Pause:
    """Waiting out an outage: growing, jittered sleeps, and one log line at each end."""

    def __init__(self, stopping: threading.Event) -> None:
        self.stopping = stopping
        self.since: float | None = None
        self.attempt = 0

    def wait(self, what: str, error: BaseException) -> None:
        if self.since is None:
            self.since = time.monotonic()
            log.warning("%s (%s): deciding is paused and resumes by itself.", what, _first_line(error))
        self.attempt += 1
        delay = random.uniform(0.05, min(2.0, 0.1 * 2 ** min(self.attempt, 5)))
        if self.stopping.is_set():
            time.sleep(delay)  # stopping, but still trying to finish the batch in hand: no busy loop
        else:
            self.stopping.wait(delay)

    def over(self) -> None:
        if self.since is not None:
            log.warning("Deciding resumed after %.1f s.", time.monotonic() - self.since)
        self.since = None
        self.attempt = 0

    def outlasted_stop(self, grace: timedelta, stop_asked_at: float | None) -> bool:
        return stop_asked_at is not None and time.monotonic() - stop_asked_at > grace.total_seconds()


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


class EnrolmentConsumer:
    """Reads the hosts' stream as one consumer of the group and decides what it reads."""

    def __init__(
        self,
        stream: Stream,
        decide: Decide,
        options: ConsumerOptions,
        stopping: threading.Event | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.stream = stream
        self.decide = decide
        self.options = options
        self.stopping = stopping or threading.Event()
        self.clock = clock
        self.pause = Pause(self.stopping)
        self.stop_asked_at: float | None = None
        self.next_sweep = 0.0
        self.idle_reads = 0
        self.sweep_cursor = "0-0"
        self.tally: Counter[str] = Counter()
        self.next_report = time.monotonic() + options.report_every.total_seconds()

    def run(self) -> None:
        """Decide entries until a stop is asked for; the batch in hand is finished first."""
        self._until_redis_answers(self.stream.ensure_group)
        log.info(
            "Enrolment consumer %s is ready: reading %s in batches of up to %d.",
            self.stream.consumer,
            REQUESTS_STREAM,
            self.options.batch_size,
        )
        while not self.stop_requested():
            try:
                self.step()
                self.pause.over()
            except REDIS_ERRORS as error:
                self.pause.wait("Redis cannot be reached", error)
            except redis.ResponseError as error:
                if "NOGROUP" in str(error):
                    # Redis lost the stream or the group (restarted without its data): start again.
                    log.warning("The consumer group is gone (%s): creating it again.", error)
                    self._until_redis_answers(self.stream.ensure_group)
                else:
                    # Redis refuses for now (out of memory, a read-only replica after a failover,
                    # a permission taken away): nothing is lost by waiting, and it is logged.
                    self.pause.wait("Redis refused a command", error)
            self._report()
        log.info("Enrolment consumer %s stopped.", self.stream.consumer)

    def stop(self) -> None:
        """Ask the consumer to stop once the batch in hand is decided (safe in a signal handler)."""
        # Only a plain assignment: a handler that took the Event's lock could deadlock with a
        # wait the signal interrupted. The loop sees the request within one pause.
        if self.stop_asked_at is None:
            self.stop_asked_at = time.monotonic()

    def stop_requested(self) -> bool:
        """Whether the consumer was asked to stop, by stop() or by setting its `stopping` event."""
        return self.stop_asked_at is not None or self.stopping.is_set()

    def step(self) -> int:
        """Take what waits, decide it, settle it; return how many entries were taken."""
        entries = self._take()
        if entries:
            self.handle(entries)
        return len(entries)

    def handle(self, entries: Sequence[Entry]) -> None:
        """Decide a batch of entries and settle it in Redis."""
        now, started = self.clock(), time.monotonic()
        settlement = Settlement()
        readable: list[tuple[Entry, EnrolmentRequest]] = []
        for entry in entries:
            if entry.deliveries > self.options.max_deliveries:
                self._set_aside(
                    entry,
                    f"it could not be decided in {entry.deliveries - 1} deliveries; "
                    "see the enrolment consumers' logs for the cause",
                    settlement,
                    now,
                )
                continue
            try:
                readable.append((entry, read_entry(entry)))
            except InvalidEnrolment as invalid:
                self._refuse(entry, invalid, settlement, now)
            except Exception as error:
                # Whatever a host wrote, one entry never stops the consumer.
                log.exception("Entry %s could not be read.", entry.id)
                self._set_aside(entry, f"it could not be read ({type(error).__name__})", settlement, now)
        decisions = self._decide([request for _, request in readable], [entry.id for entry, _ in readable])
        decided_at = self.clock()
        outcomes: Counter[str] = Counter()
        for (entry, request), decision in zip(readable, decisions, strict=True):
            if decision is None:
                continue  # left pending: it comes back after the visibility timeout
            assert request.request_id is not None
            settlement.answers.append(Answer(request.request_id, _document(decision, decided_at)))
            settlement.entry_ids.append(entry.id)
            self.tally[decision.outcome.value] += 1
            outcomes[decision.outcome.value] += 1
        self._settle(settlement)
        _log_batch(len(entries), outcomes, time.monotonic() - started)

    def _take(self) -> list[Entry]:
        if time.monotonic() >= self.next_sweep:
            entries = self._sweep()
            if entries:
                return entries
        entries = self.stream.read(self.options.batch_size)
        if entries:
            self.idle_reads = 0
            return entries
        self.idle_reads += 1
        self.stopping.wait(self.options.idle_pause(self.idle_reads))
        return []

    def _sweep(self) -> list[Entry]:
        """Take over entries held too long; now and then, forget consumers long gone."""
        idle_ms = int(self.options.visibility_timeout.total_seconds() * 1000)
        cursor, entries = self.stream.reclaim(self.options.batch_size, idle_ms, self.sweep_cursor)
        self.sweep_cursor = cursor
        if cursor == "0-0":
            self.next_sweep = time.monotonic() + self.options.sweep_every
            departed = self.stream.forget_departed(max(idle_ms * 4, 3_600_000))
            if departed:
                log.info("Forgot departed enrolment consumers that held nothing: %s", ", ".join(departed))
        if entries:
            log.warning(
                "Took over %d entries that another consumer held for more than %s.",
                len(entries),
                self.options.visibility_timeout,
            )
        return entries

    def _decide(
        self, requests: Sequence[EnrolmentRequest], entry_ids: Sequence[str]
    ) -> list[EnrolmentDecision | None]:
        """Decisions in order; None for a start left pending because deciding it failed."""
        if not requests:
            return []
        last_held = time.monotonic()
        while True:
            try:
                decisions = list(self.decide(requests, self.clock()))
            except TRANSIENT_STORE_ERRORS as error:
                if self.pause.outlasted_stop(self.options.stop_grace, self.stop_asked_at):
                    log.warning("Stopping with %d starts undecided; they stay pending.", len(requests))
                    return [None] * len(requests)
                self.pause.wait("The store cannot be reached or did not answer in time", error)
                if time.monotonic() - last_held > self.options.visibility_timeout.total_seconds() / 3:
                    last_held = time.monotonic()
                    self._hold(entry_ids)
                continue
            except Exception:
                if len(requests) == 1:
                    log.exception("A start could not be decided; it stays pending and comes back later.")
                    return [None]
                # One start that fails must not hold back the rest of its batch.
                log.exception("A batch could not be decided; deciding its starts one by one.")
                return [
                    decision
                    for request, entry_id in zip(requests, entry_ids, strict=True)
                    for decision in self._decide([request], [entry_id])
                ]
            self.pause.over()
            return list(decisions)

    def _hold(self, entry_ids: Sequence[str]) -> None:
        try:
            self.stream.keep_holding(entry_ids)
        except (*REDIS_ERRORS, redis.ResponseError) as error:
            log.warning("Could not tell Redis this consumer still holds its entries (%s).", error)

    def _settle(self, settlement: Settlement) -> None:
        if not (settlement.answers or settlement.kept or settlement.entry_ids):
            return
        settlement.answers = _one_answer_per_request(settlement.answers)
        while True:
            try:
                self.stream.settle(settlement)
            except (*REDIS_ERRORS, redis.ResponseError) as error:
                if self.pause.outlasted_stop(self.options.stop_grace, self.stop_asked_at):
                    log.warning(
                        "Stopping with %d decisions unwritten; their entries stay pending and are "
                        "answered again later.",
                        len(settlement.answers),
                    )
                    return
                self.pause.wait("Redis cannot be reached to write the decisions", error)
                continue
            self.pause.over()
            return

    def _refuse(self, entry: Entry, invalid: InvalidEnrolment, settlement: Settlement, now: datetime) -> None:
        if invalid.request_id is None:
            self._set_aside(entry, f"no decision can be written: {invalid}", settlement, now)
            return
        log.info("Enrolment request %s refused as invalid: %s", invalid.request_id, invalid)
        settlement.answers.append(Answer(invalid.request_id, _document(invalid.decision(), now)))
        settlement.entry_ids.append(entry.id)
        self.tally[Outcome.INVALID_REQUEST.value] += 1

    def _set_aside(self, entry: Entry, reason: str, settlement: Settlement, now: datetime) -> None:
        """Keep the entry (shortened) with its reason, answer it if it can be, and remove it."""
        log.warning("Entry %s set aside: %s", entry.id, reason)
        settlement.kept.append(kept_entry(entry, reason, now))
        settlement.entry_ids.append(entry.id)
        request_id = request_id_of(entry)
        if request_id is not None:
            refusal = InvalidEnrolment(f"{reason}.", request_id).decision()
            settlement.answers.append(Answer(request_id, _document(refusal, now)))
        self.tally["set aside"] += 1

    def _until_redis_answers(self, call: Callable[[], Any]) -> None:
        while True:
            try:
                call()
            except (*REDIS_ERRORS, redis.ResponseError) as error:
                if self.stop_requested():
                    return
                self.pause.wait("Redis cannot be reached or refused the consumer group", error)
                continue
            self.pause.over()
            return

    def _report(self) -> None:
        if time.monotonic() < self.next_report:
            return
        self.next_report = time.monotonic() + self.options.report_every.total_seconds()
        if self.tally:
            counts = ", ".join(f"{outcome} {count}" for outcome, count in sorted(self.tally.items()))
            log.info("Decided in the last %s: %s.", self.options.report_every, counts)
            self.tally.clear()


def _log_batch(taken: int, outcomes: Counter[str], seconds: float) -> None:
    """One line per batch, its counts as fields for JSON logs (the minute's summary stays for text)."""
    decided = sum(outcomes.values())
    log.info(
        "Batch of %d entries: %d decided in %.1f ms.",
        taken,
        decided,
        seconds * 1000,
        extra={
            "event": "enrolment_batch",
            "entries": taken,
            "decided": decided,
            "outcomes": dict(outcomes),
            "duration_ms": round(seconds * 1000, 1),
        },
    )


def _one_answer_per_request(answers: Sequence[Answer]) -> list[Answer]:
    """One decision per request id, the store's own first (the one its audit log records).

    Two entries of one batch may carry the same request id: a start sent twice, or an id
    reused for another user. The first decision the store made for it is the one the host
    reads; a refusal of the entry itself never replaces it.
    """
    chosen: dict[str, Answer] = {}
    for answer in sorted(answers, key=lambda answer: answer.document["outcome"] == "invalid_request"):
        chosen.setdefault(answer.request_id, answer)
    return list(chosen.values())


def _document(decision: EnrolmentDecision, now: datetime) -> dict[str, Any]:
    """The decision as the host reads it."""
    return {**decision.as_message(), "decided_at": format_instant(now, "milliseconds")}


def consumer_options(settings: Settings) -> ConsumerOptions:
    """The consumer's options from the settings."""
    return ConsumerOptions(
        batch_size=settings.enrolment_batch_size,
        max_deliveries=settings.enrolment_max_deliveries,
        visibility_timeout=settings.enrolment_visibility_timeout,
    )


def redis_client(settings: Settings) -> redis.Redis:
    """A Redis client for the consumer; a stuck connection is noticed within seconds."""
    return redis.Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_timeout=5,
        socket_connect_timeout=5,
        health_check_interval=30,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`avtor-enrolment-consumer`: run one enrolment consumer until SIGTERM or Ctrl-C."""
    arguments = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    configure_logging("enrolment-consumer", settings.log_format, arguments.log_level)
    if settings.development_mode:
        log.warning("%s", DEVELOPMENT_MODE_NOTICE)
    from worker import wiring  # the store is opened only once the settings are known to be good

    try:
        wiring.check_store()
    except wiring.STORE_NOT_READY as error:
        print(f"The enrolment consumer cannot start: {error}", file=sys.stderr)
        return 2
    name = arguments.name or f"{socket.gethostname()}-{os.getpid()}"
    # EXPIRE takes whole seconds, and 0 would delete each decision at once.
    decision_ttl = max(1, int(settings.result_expires.total_seconds()))
    stream = RequestStream(redis_client(settings), name, decision_ttl)
    store = wiring.enrolment_store()
    grace, policy = settings.grace_period, OverLimitPolicy(settings.over_limit_policy)
    reclaim_after = settings.reclaim_idle_after
    consumer = EnrolmentConsumer(
        stream,
        lambda requests, now: enrol_editors(requests, store, now, grace, policy, reclaim_after),
        consumer_options(settings),
    )

    def stop(number: int, _frame: FrameType | None) -> None:
        log.info("Signal %d: finishing the batch in hand, then stopping.", number)
        consumer.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("Redis: %s; store: %s.", settings.redis_url, settings.store_url)
    consumer.run()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avtor-enrolment-consumer",
        description="Decide the editors' starts that hosts add to the Redis stream avtor:enrol:requests. "
        "Run one or more; each is one consumer of the group avtor-enrolment. Settings come from AVTOR_* "
        "environment variables (AVTOR_REDIS_URL, AVTOR_DATABASE_URL, ...).",
    )
    parser.add_argument(
        "--name", help="this consumer's name in the group (default: host name and process id)"
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default INFO"
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
