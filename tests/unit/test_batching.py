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


def test_after_a_burst_the_next_leader_waits_a_little_for_more() -> None:
    recorder = Recorder(pause=0.05)
    batcher = Batcher(recorder.decide, linger=0.2)
    run_concurrently(batcher, [f"first{number}" for number in range(5)])
    assert max(len(batch) for batch in recorder.batches) > 1
    # Straight after a burst, starts a few milliseconds apart are still decided together.
    answers: list[str] = []
    threads = [
        threading.Thread(target=lambda n=n: answers.append(batcher.decide(f"late{n}"))) for n in range(3)
    ]
    for thread in threads:
        thread.start()
        time.sleep(0.01)
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(answers) == ["LATE0", "LATE1", "LATE2"]
    assert ["late0", "late1", "late2"] in [sorted(batch) for batch in recorder.batches]


def test_a_lone_request_after_quiet_times_does_not_linger() -> None:
    recorder = Recorder()
    # Were a lone request made to linger, it would wait ten minutes.
    batcher = Batcher(recorder.decide, linger=600.0)
    answers: list[str] = []
    thread = threading.Thread(target=lambda: answers.extend([batcher.decide("a"), batcher.decide("b")]))
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert answers == ["A", "B"]
