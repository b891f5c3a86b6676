"""Real workers deciding starts through the enrolment stream, as monitors and operators see them."""

from __future__ import annotations

import threading
from typing import Any

from tests.e2e.conftest import Fleet
from tests.support.ledger import seat_holders, seed_licenses
from tests.support.manager import celery_client
from tests.support.publishing import check_decisions_against_store, collect_decisions, publish_starts


def test_starts_decided_by_the_stream_are_sent_as_task_events_for_monitors(
    fleet: Fleet, store_url: str, redis_url: str
) -> None:
    seed_licenses(store_url, **{"AVTR-EVNT-0001": 10})
    # As docker-compose runs the enrolment workers: with task events, so Flower sees them.
    node = fleet.worker("events-a", queues="avtor.enrolment", extra=("-E",))
    app = celery_client(redis_url)
    events: dict[str, list[dict[str, Any]]] = {"task-received": [], "task-succeeded": []}
    listening, stop = threading.Event(), threading.Event()
    receivers: list[Any] = []

    def listen() -> None:
        with app.connection_for_read() as connection:
            handlers: dict[str, Any] = {name: found.append for name, found in events.items()}
            # Events reach only a listener already subscribed: the worker's heartbeat (every
            # 2 s) shows that it is.
            handlers["worker-heartbeat"] = lambda event: listening.set()
            receiver = app.events.Receiver(connection, handlers=handlers)
            receivers.append(receiver)
            receiver.capture(limit=None, timeout=None, wakeup=False)

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert listening.wait(30), node.log()[-3000:]
    try:
        sent = publish_starts(redis_url, 11, 40, 15)
        task_ids = [task_id for task_id, _, _ in sent]
        results = collect_decisions(redis_url, task_ids, timeout=60)
        assert len(results) == 40
        holders, _, _ = seat_holders(store_url)
        tally = check_decisions_against_store(sent, results, holders)
        assert tally["granted"] == 10
        for _ in range(100):
            if {event["uuid"] for event in events["task-succeeded"]} >= set(task_ids):
                break
            stop.wait(0.1)
    finally:
        receivers[0].should_stop = True
        listener.join(timeout=10)
        app.close()

    received = {event["uuid"]: event for event in events["task-received"]}
    succeeded = {event["uuid"]: event for event in events["task-succeeded"]}
    assert set(received) >= set(task_ids) and set(succeeded) >= set(task_ids)
    assert {received[task_id]["name"] for task_id in task_ids} == {"avtor.enrol"}
    for task_id in task_ids:
        outcome = results[task_id]["result"]["outcome"]
        assert outcome in succeeded[task_id]["result"]
        assert succeeded[task_id]["runtime"] >= 0
    # Decided by the stream, not as Celery tasks one by one (Celery logs each task it receives).
    assert "Task avtor.enrol[" not in node.log()
