"""The enrolment stream's logic, with fake messages: what it decides, stores, acknowledges or hands back."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from celery.worker.state import revoked

from domain.enrolment import EnrolmentDecision, EnrolmentRequest, Outcome, decision_for
from worker.enrolment_stream import EnrolmentStream


class FakeMessage:
    """What the stream reads of a kombu message, and what it does to it."""

    channel = None

    def __init__(self, body: Any, events: list[str] | None = None, **headers: Any) -> None:
        self.headers: Any = {"task": "avtor.enrol", "id": str(uuid.uuid4()), **headers}
        self.body = body
        self.delivery_info: dict[str, Any] = {"exchange": "", "routing_key": "avtor.enrolment"}
        self.acknowledged = False
        self.requeued = False
        self.events = events if events is not None else []

    def decode(self) -> Any:
        if isinstance(self.body, Exception):
            raise self.body
        return self.body

    def ack(self) -> None:
        assert not self.acknowledged
        self.acknowledged = True
        self.events.append(f"ack {self.headers['id']}")

    def reject_log_error(self, logger: Any, errors: Any, requeue: bool = False) -> None:
        self.acknowledged = True
        self.requeued = requeue


def start(username: str, events: list[str] | None = None, **headers: Any) -> FakeMessage:
    return FakeMessage([[], {"username": username, "request_id": f"r-{username}"}, None], events, **headers)


class Recorder:
    """The stream's collaborators: a decision per request, stored results, messages handed back."""

    def __init__(self, events: list[str] | None = None, fail_decide: bool = False, fail_store: bool = False):
        self.events = events if events is not None else []
        self.batches: list[list[str]] = []
        self.stored: dict[str, dict[str, Any]] = {}
        self.handed_back: list[FakeMessage] = []
        self.fail_decide, self.fail_store = fail_decide, fail_store

    def decide(self, requests: Sequence[EnrolmentRequest]) -> list[EnrolmentDecision]:
        self.batches.append([request.username for request in requests])
        if self.fail_decide:
            raise ConnectionError("the store is unreachable")
        return [
            decision_for(Outcome.GRANTED, request.username, number + 1, 10, request.request_id)
            for number, request in enumerate(requests)
        ]

    def store(self, results: Sequence[tuple[str, dict[str, Any]]]) -> None:
        if self.fail_store:
            raise ConnectionError("Redis is unreachable")
        self.events.append(f"store {len(results)}")
        self.stored.update(results)

    def stream(self) -> EnrolmentStream:
        return EnrolmentStream(self.decide, self.store, self.handed_back.append)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def test_a_batch_is_decided_together_stored_in_one_go_and_acknowledged_after_storing() -> None:
    events: list[str] = []
    recorder = Recorder(events)
    messages = [start(name, events) for name in ("ann", "bob", "cid")]
    recorder.stream().decide_batch(messages)
    assert recorder.batches == [["ann", "bob", "cid"]]
    assert events[0] == "store 3"
    assert sorted(events[1:]) == sorted(f"ack {message.headers['id']}" for message in messages)
    assert [recorder.stored[message.headers["id"]]["username"] for message in messages] == [
        "ann",
        "bob",
        "cid",
    ]
    assert all(result["outcome"] == "granted" for result in recorder.stored.values())


def test_an_invalid_start_is_refused_without_deciding_anything(recorder: Recorder) -> None:
    nameless = FakeMessage([[], {"request_id": "r-1"}, None])
    recorder.stream().decide_batch([nameless, start("ann")])
    assert recorder.batches == [["ann"]]
    refusal = recorder.stored[nameless.headers["id"]]
    assert (refusal["outcome"], refusal["allowed"]) == ("invalid_request", False)
    assert nameless.acknowledged


@pytest.mark.parametrize(
    "message",
    [
        FakeMessage(ValueError("not JSON")),
        FakeMessage({"username": "ann"}),
        FakeMessage([[], {"username": "ann"}]),
        FakeMessage([{}, {"username": "ann"}, None]),
        FakeMessage([[], {"username": "ann"}, {"callbacks": [{"task": "x"}]}]),
        FakeMessage([[], {"username": "ann"}, None], retries="many"),
        FakeMessage([[], {"username": "ann"}, None], timelimit=5),
    ],
    ids=[
        "undecodable",
        "not a list",
        "two items",
        "args not a list",
        "callbacks",
        "bad retries",
        "bad timelimit",
    ],
)
def test_a_message_of_an_unusual_shape_goes_to_celerys_path_untouched(
    recorder: Recorder, message: FakeMessage
) -> None:
    recorder.stream().decide_batch([message, start("ann")])
    assert recorder.handed_back == [message]
    assert not message.acknowledged
    assert message.headers["id"] not in recorder.stored
    assert recorder.batches == [["ann"]]


def test_a_batch_that_cannot_be_decided_goes_to_celerys_path_where_each_task_retries() -> None:
    recorder = Recorder(fail_decide=True)
    nameless = FakeMessage([[], {}, None])
    messages = [start("ann"), nameless, start("bob")]
    recorder.stream().decide_batch(messages)
    assert recorder.handed_back == [messages[0], messages[2]]
    assert not any(message.acknowledged for message in recorder.handed_back)
    # The invalid one needed no store: it is answered all the same.
    assert list(recorder.stored) == [nameless.headers["id"]] and nameless.acknowledged


def test_decisions_that_cannot_be_stored_put_their_messages_back_on_the_queue() -> None:
    recorder = Recorder(fail_store=True)
    messages = [start("ann"), start("bob")]
    recorder.stream().decide_batch(messages)
    assert all(message.requeued for message in messages)
    assert recorder.handed_back == []


@pytest.mark.parametrize(
    ("change", "taken"),
    [
        ({}, True),
        ({"task": "avtor.admin.status"}, False),
        ({"id": ""}, False),
        ({"id": "x" * 201}, False),
        ({"id": 42}, False),
        ({"eta": "2026-11-29T12:00:00+00:00"}, False),
        ({"expires": "2026-11-29T12:00:00+00:00"}, False),
        ({"eta": None, "expires": None}, True),
    ],
)
def test_only_everyday_starts_are_taken(recorder: Recorder, change: dict[str, Any], taken: bool) -> None:
    stream = recorder.stream()
    message = start("ann")
    message.headers.update(change)
    assert stream.offer(message) is taken
    assert stream.stop(timeout=10)
    assert message.acknowledged is taken


def test_redelivered_revoked_and_headerless_messages_are_left_to_celerys_path(recorder: Recorder) -> None:
    stream = recorder.stream()
    redelivered = start("ann")
    redelivered.delivery_info["redelivered"] = True
    revoked_start = start("bob")
    revoked.add(revoked_start.headers["id"])
    headerless = start("cid")
    headerless.headers = None
    try:
        assert not any(stream.offer(message) for message in (redelivered, revoked_start, headerless))
    finally:
        revoked.discard(revoked_start.headers["id"])
        stream.stop(timeout=10)
    assert recorder.batches == []


def test_stopping_decides_everything_already_taken_then_takes_nothing(recorder: Recorder) -> None:
    stream = recorder.stream()
    messages = [start(f"user{number}") for number in range(250)]
    assert all(stream.offer(message) for message in messages)
    assert stream.stop(timeout=30)
    assert all(message.acknowledged for message in messages)
    assert len(recorder.stored) == 250
    assert all(len(batch) <= 100 for batch in recorder.batches)
    late = start("late")
    assert not stream.offer(late)
    assert not late.acknowledged


def test_starts_offered_while_a_batch_is_decided_are_decided_together_next() -> None:
    entered, release = threading.Event(), threading.Event()
    recorder = Recorder()
    first_decide = recorder.decide

    def slow_decide(requests: Sequence[EnrolmentRequest]) -> list[EnrolmentDecision]:
        if not entered.is_set():
            entered.set()
            release.wait(10)
        return first_decide(requests)

    stream = EnrolmentStream(slow_decide, recorder.store, recorder.handed_back.append)
    stream.offer(start("first"))
    assert entered.wait(10)
    for number in range(5):
        stream.offer(start(f"later{number}"))
    assert not stream.idle()
    release.set()
    assert stream.stop(timeout=10)
    assert recorder.batches == [["first"], [f"later{number}" for number in range(5)]]
    assert stream.idle()


def test_the_stream_survives_a_batch_that_fails_unexpectedly() -> None:
    recorder = Recorder()
    handed_back: list[FakeMessage] = []

    def decide_broken_once(requests: Sequence[EnrolmentRequest]) -> list[EnrolmentDecision]:
        recorder.batches.append([request.username for request in requests])
        if len(recorder.batches) == 1:
            return []  # a fault of the manager itself
        return recorder.decide(requests)

    stream = EnrolmentStream(decide_broken_once, recorder.store, handed_back.append)
    doomed = start("ann")
    stream.offer(doomed)
    wait_until(stream.idle)
    survivor = start("bob")
    stream.offer(survivor)
    assert stream.stop(timeout=10)
    assert handed_back == [doomed] and not doomed.acknowledged
    assert survivor.acknowledged and survivor.headers["id"] in recorder.stored


def wait_until(condition: Any, timeout: float = 10.0) -> None:
    finished = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        finished.wait(0.01)
    raise AssertionError("the condition never held")


def test_the_consumer_is_told_after_every_settled_batch(recorder: Recorder) -> None:
    settled: list[int] = []
    stream = EnrolmentStream(
        recorder.decide,
        recorder.store,
        recorder.handed_back.append,
        on_settled=lambda decided, seconds: settled.append(len(decided)),
    )
    message = start("ann")
    stream.offer(message)
    wait_until(lambda: settled)
    assert settled == [1] and message.acknowledged
    assert stream.stop(timeout=10)


def test_a_batch_failing_after_a_hand_back_hands_each_message_back_once() -> None:
    handed_back: list[FakeMessage] = []

    def wrong_count(requests: Sequence[EnrolmentRequest]) -> list[EnrolmentDecision]:
        return []  # a fault of the manager itself: no decision for the request

    recorder = Recorder()
    stream = EnrolmentStream(wrong_count, recorder.store, handed_back.append)
    unusual, valid = FakeMessage({"not": "a list"}), start("ann")
    stream.offer(unusual)
    stream.offer(valid)
    assert stream.stop(timeout=10)
    assert sorted(map(id, handed_back)) == sorted([id(unusual), id(valid)])
    assert not unusual.acknowledged and not valid.acknowledged


def test_a_start_revoked_while_it_waited_goes_to_celerys_path(recorder: Recorder) -> None:
    message = start("ann")
    revoked.add(message.headers["id"])
    try:
        recorder.stream().decide_batch([message])
    finally:
        revoked.discard(message.headers["id"])
    assert recorder.handed_back == [message] and recorder.batches == []


def test_a_message_that_cannot_be_put_back_does_not_stop_the_others_or_the_stream() -> None:
    recorder = Recorder(fail_store=True)

    class Stuck(FakeMessage):
        def reject_log_error(self, logger: Any, errors: Any, requeue: bool = False) -> None:
            raise RuntimeError("the channel is gone")

    stuck, other = Stuck([[], {"username": "ann"}, None]), start("bob")
    assert recorder.stream().decide_batch([stuck, other]) == []
    assert other.requeued and not stuck.acknowledged
    assert recorder.handed_back == []
