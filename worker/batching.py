"""Deciding editors' starts that arrive together in one worker process in one go.

With a thread pool, many `avtor.enrol` tasks run at once in a process. Each hands
its request to the batcher and waits; one of them (the leader) takes every
request waiting at that moment and decides them all with one read and at most
one locked transaction, then hands leadership to a waiting task, if any. Under
load this turns many small transactions into few larger ones; alone, a request
is decided at once, as before. With a process pool (one task at a time per
process) every batch has one request.

Requests reach a worker one by one, at the pace its consumer takes them from
Redis. So when more are known to be on their way (the worker has reserved more
messages than are waiting), the leader lingers a few milliseconds while they keep
arriving, and decides them together: under load the fixed cost of a read or a
transaction is shared by many requests; with little load nobody waits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Request = TypeVar("Request")
Decision = TypeVar("Decision")


class _Slot(Generic[Request, Decision]):
    """One waiting request: whether it leads, and once decided its decision or error."""

    __slots__ = ("decision", "error", "finished", "lead", "request", "wake")

    def __init__(self, request: Request) -> None:
        self.request = request
        self.wake = threading.Event()
        self.lead = False
        self.finished = False
        self.decision: Decision | None = None
        self.error: BaseException | None = None


class Batcher(Generic[Request, Decision]):
    """Runs `decide` over whatever requests are waiting, one batch at a time."""

    def __init__(
        self,
        decide: Callable[[Sequence[Request]], Sequence[Decision]],
        largest: int = 64,
        expected: Callable[[], int] = lambda: 1,
        linger: float = 0.03,
        quiet: float = 0.01,
    ) -> None:
        self._decide = decide
        self._largest = largest
        self._expected = expected
        self._linger = linger
        self._quiet = quiet
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._last_arrival = 0.0
        self._waiting: list[_Slot[Request, Decision]] = []
        self._leading = False

    def decide(self, request: Request) -> Decision:
        """Decide `request`, together with any others waiting; raise what deciding raised."""
        slot: _Slot[Request, Decision] = _Slot(request)
        with self._lock:
            self._waiting.append(slot)
            self._last_arrival = time.monotonic()
            self._arrived.notify()
            if not self._leading:
                self._leading = slot.lead = True
        while True:
            if slot.lead:
                self._run_one_batch(slot)
            if slot.finished:
                break
            slot.wake.wait()
            slot.wake.clear()
        if slot.error is not None:
            raise slot.error
        return slot.decision  # type: ignore[return-value]

    def _run_one_batch(self, leader: _Slot[Request, Decision]) -> None:
        """Decide the oldest waiting requests; then lead on, or pass the lead to a waiting one."""
        deadline = time.monotonic() + self._linger
        with self._lock:
            # Linger only while more requests are on their way, and only while they keep arriving.
            while len(self._waiting) < min(self._largest, self._expected()):
                now = time.monotonic()
                pause = min(deadline, self._last_arrival + self._quiet) - now
                if pause <= 0:
                    break
                self._arrived.wait(pause)
            batch, self._waiting = self._waiting[: self._largest], self._waiting[self._largest :]
        try:
            decisions = self._decide([slot.request for slot in batch])
        except BaseException as error:  # each task gets the error and retries on its own
            for slot in batch:
                slot.error = error
        else:
            for slot, decision in zip(batch, decisions, strict=True):
                slot.decision = decision
        for slot in batch:
            slot.finished = True
        with self._lock:
            if leader.finished:
                leader.lead = False
                successor = self._waiting[0] if self._waiting else None
                if successor is None:
                    self._leading = False
                else:
                    successor.lead = True
            else:
                successor = None
        for slot in batch:
            if slot is not leader:
                slot.wake.set()
        if successor is not None:
            successor.wake.set()
