import threading
import time
from collections.abc import Sequence

import pytest

from worker.batching import Batcher


class Recorder:
    def __init__(self, pause: float = 0.0, fail_on: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.pause = pause
        self.fail_on = fail_on
        self.lock = threading.Lock()

    def decide(self, requests: Sequence[str]) -> list[str]:
        with self.lock:
            self.batches.append(list(requests))
        time.sleep(self.pause)
        if self.fail_on in requests:
            raise RuntimeError(f"store unreachable at {self.fail_on}")
        return [request.upper() for request in requests]


def run_concurrently(batcher: Batcher[str, str], requests: list[str]) -> dict[str, object]:
    answers: dict[str, object] = {}
    start = threading.Barrier(len(requests))

    def one(request: str) -> None:
        start.wait()
        try:
            answers[request] = batcher.decide(request)
        except RuntimeError as error:
            answers[request] = error

    threads = [threading.Thread(target=one, args=(request,)) for request in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    return answers


def test_a_lone_request_is_decided_at_once_on_its_own() -> None:
    recorder = Recorder()
    assert Batcher(recorder.decide).decide("bob") == "BOB"
    assert recorder.batches == [["bob"]]


def test_requests_arriving_together_are_decided_in_few_batches_each_exactly_once() -> None:
    recorder = Recorder(pause=0.02)
    requests = [f"user{number}" for number in range(40)]
    answers = run_concurrently(Batcher(recorder.decide), requests)
    assert answers == {request: request.upper() for request in requests}
    decided = [request for batch in recorder.batches for request in batch]
    assert sorted(decided) == sorted(requests)
    assert len(recorder.batches) < len(requests) / 2


def test_no_batch_is_larger_than_the_limit() -> None:
    recorder = Recorder(pause=0.01)
    run_concurrently(Batcher(recorder.decide, largest=5), [f"user{number}" for number in range(30)])
    assert max(len(batch) for batch in recorder.batches) <= 5


def test_an_error_reaches_every_request_of_its_batch_and_no_other() -> None:
    recorder = Recorder(pause=0.02, fail_on="user0")
    answers = run_concurrently(Batcher(recorder.decide), [f"user{number}" for number in range(20)])
    failed_batch = next(batch for batch in recorder.batches if "user0" in batch)
    for request, answer in answers.items():
        if request in failed_batch:
            assert isinstance(answer, RuntimeError)
        else:
            assert answer == request.upper()


def test_the_batcher_keeps_working_after_an_error() -> None:
    recorder = Recorder(fail_on="bad")
    batcher = Batcher(recorder.decide)
    with pytest.raises(RuntimeError):
        batcher.decide("bad")
    assert batcher.decide("good") == "GOOD"


def test_while_more_requests_are_on_their_way_the_leader_waits_for_them() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.decide, expected=lambda: 4, linger=5.0, quiet=5.0)
    answers = run_concurrently(batcher, ["a", "b", "c", "d"])
    assert answers == {"a": "A", "b": "B", "c": "C", "d": "D"}
    assert [sorted(batch) for batch in recorder.batches] == [["a", "b", "c", "d"]]


def test_the_leader_stops_waiting_when_requests_stop_arriving() -> None:
    recorder = Recorder()
    # Were the quiet rule broken, the leader would wait out the whole ten-minute linger.
    batcher = Batcher(recorder.decide, expected=lambda: 50, linger=600.0, quiet=0.01)
    answers: list[str] = []
    leader = threading.Thread(target=lambda: answers.append(batcher.decide("alone")))
    leader.start()
    leader.join(timeout=120)
    assert not leader.is_alive()
    assert answers == ["ALONE"]
    assert recorder.batches == [["alone"]]
