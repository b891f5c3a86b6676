"""What the consumer does with a start the enrolment stream hands back."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from celery.bootsteps import CLOSE, RUN, TERMINATE

from worker.consumer import GuardedConsumer


def consumer_in(state: int, ran: list[Any]) -> GuardedConsumer:
    consumer = GuardedConsumer.__new__(GuardedConsumer)
    consumer.blueprint = SimpleNamespace(state=state)
    consumer._run_as_task = ran.append
    return consumer


def test_a_start_handed_back_while_the_worker_runs_becomes_a_celery_task() -> None:
    ran: list[Any] = []
    consumer_in(RUN, ran)._hand_back("message")
    assert ran == ["message"]


@pytest.mark.parametrize("state", [CLOSE, TERMINATE])
def test_a_start_handed_back_while_the_worker_stops_is_left_for_its_queue(state: int) -> None:
    # The pool may already be shut down: running it would answer the start as malformed.
    ran: list[Any] = []
    consumer_in(state, ran)._hand_back("message")
    assert ran == []


def consumer_after_restart(restored: bool, calls: list[Any], dispatcher: Any = None) -> GuardedConsumer:
    consumer = GuardedConsumer.__new__(GuardedConsumer)
    consumer._maximum_prefetch_restored = restored
    consumer.restart_count = 1
    consumer._restore_prefetch_count_after_connection_restart = calls.append
    consumer.event_dispatcher = dispatcher
    return consumer


def test_the_streams_acknowledgements_restore_a_prefetch_count_lowered_by_a_reconnection() -> None:
    calls: list[Any] = []
    decided = [(object(), f"id-{number}", {"outcome": "granted"}) for number in range(3)]
    consumer_after_restart(False, calls)._after_batch(decided, 0.01)
    assert len(calls) == 3
    calls.clear()
    consumer_after_restart(True, calls)._after_batch(decided, 0.01)
    assert calls == []


def test_a_failing_event_dispatcher_does_not_reach_the_event_loop(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        enabled = True
        groups = frozenset[str]()
        attempts = 0

        def send(self, *args: Any, **kwargs: Any) -> None:
            self.attempts += 1
            raise RuntimeError("the event connection is gone")

    dispatcher = Broken()
    decided = [(SimpleNamespace(headers={}), "id-1", {"outcome": "granted"})]
    consumer_after_restart(True, [], dispatcher)._after_batch(decided, 0.01)  # raises nothing
    assert dispatcher.attempts == 1
    assert "Could not finish a batch of 1 decision(s)" in caplog.text
