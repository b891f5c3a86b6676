"""The enrolment consumer's logic, on a stream in memory: what is answered, kept, retried or left pending."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from sqlalchemy.exc import OperationalError

from domain.enrolment import EnrolmentDecision, EnrolmentRequest, InvalidEnrolment, Outcome, decision_for
from worker.enrolment_consumer import ConsumerOptions, EnrolmentConsumer
from worker.requests_stream import Entry, Settlement

NOW = datetime(2026, 11, 30, 9, 12, tzinfo=UTC)
OPTIONS = ConsumerOptions(batch_size=10, max_deliveries=3, stop_grace=timedelta(seconds=0))


class StreamInMemory:
    """What the consumer needs of the stream: entries to hand out, and the settlements it made."""

    def __init__(self, entries: Sequence[Entry] = (), failing_settles: int = 0) -> None:
        self.consumer = "unit"
        self.waiting = list(entries)
        self.settled: list[Settlement] = []
        self.failing_settles = failing_settles
        self.held: list[list[str]] = []

    def ensure_group(self) -> None:
        pass

    def read(self, count: int) -> list[Entry]:
        taken, self.waiting = self.waiting[:count], self.waiting[count:]
        return taken

    def reclaim(self, count: int, min_idle_ms: int, cursor: str) -> tuple[str, list[Entry]]:
        return "0-0", []

    def forget_departed(self, idle_ms: int) -> list[str]:
        return []

    def keep_holding(self, entry_ids: Sequence[str]) -> None:
        self.held.append(list(entry_ids))

    def settle(self, settlement: Settlement) -> None:
        if self.failing_settles:
            self.failing_settles -= 1
            raise redis.ConnectionError("Redis is restarting")
        self.settled.append(settlement)

    def answers(self) -> dict[str, dict[str, Any]]:
        return {answer.request_id: answer.document for s in self.settled for answer in s.answers}

    def removed(self) -> list[str]:
        return [entry_id for s in self.settled for entry_id in s.entry_ids]


def entry(entry_id: str, deliveries: int = 1, **fields: str | bytes) -> Entry:
    raw = {name: value if isinstance(value, bytes) else value.encode() for name, value in fields.items()}
    size = sum(len(name) + len(value) for name, value in raw.items())
    return Entry(entry_id, raw, size, len(raw), deliveries)


def grant_all(requests: Sequence[EnrolmentRequest], now: datetime) -> list[EnrolmentDecision]:
    return [
        decision_for(Outcome.GRANTED, request.username, number + 1, 10, request.request_id)
        for number, request in enumerate(requests)
    ]


def consumer_of(stream: StreamInMemory, decide: Any = grant_all) -> EnrolmentConsumer:
    return EnrolmentConsumer(stream, decide, OPTIONS, clock=lambda: NOW)


def test_a_batch_is_decided_together_and_settled_in_one_go() -> None:
    calls: list[int] = []

    def decide(requests: Sequence[EnrolmentRequest], now: datetime) -> list[EnrolmentDecision]:
        calls.append(len(requests))
        return grant_all(requests, now)

    stream = StreamInMemory([entry(f"1-{n}", request_id=f"r{n}", username=f"Bob{n}") for n in range(4)])
    assert consumer_of(stream, decide).step() == 4
    assert calls == [4]
    assert len(stream.settled) == 1
    assert stream.removed() == ["1-0", "1-1", "1-2", "1-3"]
    answer = stream.answers()["r2"]
    assert (answer["outcome"], answer["username"], answer["decided_at"]) == (
        "granted",
        "bob2",
        "2026-11-30T09:12:00.000Z",
    )


def test_an_invalid_entry_is_answered_and_the_rest_of_its_batch_decided() -> None:
    stream = StreamInMemory(
        [entry("1-0", request_id="good", username="bob"), entry("1-1", request_id="bad", username="")]
    )
    consumer_of(stream).step()
    answers = stream.answers()
    assert answers["good"]["outcome"] == "granted"
    assert answers["bad"]["outcome"] == "invalid_request"
    assert stream.removed() == ["1-1", "1-0"]
    assert stream.settled[0].kept == []


def test_an_entry_without_a_request_id_is_kept_with_its_reason_and_removed() -> None:
    stream = StreamInMemory([entry("1-0", username="bob")])
    consumer_of(stream).step()
    [kept] = stream.settled[0].kept
    assert "request_id must be" in kept["reason"]
    assert kept["fields"] == {"username": "bob"}
    assert stream.answers() == {}
    assert stream.removed() == ["1-0"]


def test_an_entry_delivered_too_often_is_set_aside_and_answered_without_being_decided() -> None:
    decided: list[EnrolmentRequest] = []

    def decide(requests: Sequence[EnrolmentRequest], now: datetime) -> list[EnrolmentDecision]:
        decided.extend(requests)
        return grant_all(requests, now)

    stream = StreamInMemory([entry("1-0", deliveries=4, request_id="again", username="bob")])
    consumer_of(stream, decide).step()
    assert decided == []
    assert "could not be decided in 3 deliveries" in stream.answers()["again"]["message"]
    assert stream.settled[0].kept[0]["deliveries"] == 4


def test_a_start_whose_deciding_fails_is_left_pending_and_the_others_are_decided() -> None:
    def decide(requests: Sequence[EnrolmentRequest], now: datetime) -> list[EnrolmentDecision]:
        if any(request.username == "poison" for request in requests):
            raise ValueError("a bug")
        return grant_all(requests, now)

    stream = StreamInMemory(
        [entry(f"1-{n}", request_id=f"r{n}", username=name) for n, name in enumerate(["a", "poison", "b"])]
    )
    consumer_of(stream, decide).step()
    assert set(stream.answers()) == {"r0", "r2"}
    assert stream.removed() == ["1-0", "1-2"], "the failing one stays pending, to come back later"


def test_a_store_outage_pauses_deciding_holds_the_entries_and_resumes() -> None:
    failures = [OperationalError("SELECT", {}, Exception("the server closed the connection"))] * 3

    def decide(requests: Sequence[EnrolmentRequest], now: datetime) -> list[EnrolmentDecision]:
        if failures:
            raise failures.pop()
        return grant_all(requests, now)

    stream = StreamInMemory([entry("1-0", request_id="r0", username="bob")])
    consumer = EnrolmentConsumer(
        stream,
        decide,
        ConsumerOptions(visibility_timeout=timedelta(milliseconds=1)),
        clock=lambda: NOW,
    )
    consumer.step()
    assert stream.answers()["r0"]["outcome"] == "granted"
    assert stream.held, "while paused, the consumer tells Redis it still holds its entries"


def test_decisions_are_written_once_redis_is_back() -> None:
    stream = StreamInMemory([entry("1-0", request_id="r0", username="bob")], failing_settles=2)
    consumer_of(stream).step()
    assert stream.answers()["r0"]["outcome"] == "granted"
    assert len(stream.settled) == 1


def test_a_stop_during_an_outage_leaves_the_batch_pending_after_the_grace() -> None:
    def decide(requests: Sequence[EnrolmentRequest], now: datetime) -> list[EnrolmentDecision]:
        raise OperationalError("SELECT", {}, Exception("no route to host"))

    stream = StreamInMemory([entry("1-0", request_id="r0", username="bob")])
    consumer = consumer_of(stream, decide)
    consumer.stop()
    consumer.step()
    assert stream.settled == [], "nothing is acknowledged that was not decided"


def test_an_idle_consumer_pauses_briefly_at_first_and_longer_when_quiet() -> None:
    options = ConsumerOptions()
    pauses = [options.idle_pause(reads) for reads in (1, 2, 5, 50, 101, 1000)]
    assert pauses == [0.0005, 0.001, 0.008, 0.01, 0.05, 0.05]


def test_redis_refusing_the_settlement_for_a_while_pauses_and_loses_nothing() -> None:
    class RefusingStream(StreamInMemory):
        refusals = 2

        def settle(self, settlement: Settlement) -> None:
            if self.refusals:
                self.refusals -= 1
                raise redis.ResponseError("OOM command not allowed when used memory > 'maxmemory'.")
            super().settle(settlement)

    stream = RefusingStream([entry("1-0", request_id="r0", username="bob")])
    consumer_of(stream).step()
    assert stream.answers()["r0"]["outcome"] == "granted"


def test_one_request_id_in_two_entries_of_a_batch_gets_the_decision_the_store_made_first() -> None:
    decided: list[str] = []

    def decide(requests: Sequence[EnrolmentRequest], now: datetime) -> list[EnrolmentDecision]:
        decisions = []
        for request in requests:
            if request.request_id in decided:
                decisions.append(
                    InvalidEnrolment("request_id was already used", request.request_id).decision()
                )
            else:
                decided.append(str(request.request_id))
                decisions.append(decision_for(Outcome.GRANTED, request.username, 1, 10, request.request_id))
        return decisions

    stream = StreamInMemory(
        [
            entry("1-0", request_id="r2", username=""),  # unreadable: refused before any decision
            entry("1-1", request_id="r2", username="dave"),
            entry("1-2", request_id="r2", username="erin"),
        ]
    )
    consumer_of(stream, decide).step()
    [settled] = stream.settled
    assert [(answer.request_id, answer.document["username"]) for answer in settled.answers] == [
        ("r2", "dave")
    ]
    assert sorted(settled.entry_ids) == ["1-0", "1-1", "1-2"]
