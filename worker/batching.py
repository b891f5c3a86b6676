"""Claims that arrive together in one worker process are decided in one transaction.

With a thread pool, many `avtor.enrol` tasks run at once in a process. A task whose
editor needs the ledger's lock (a seat to claim or to refuse) hands its request to
the batcher and waits; one of them, the leader, takes every request waiting at that
moment and decides them all in one locked transaction, then hands the lead to a
waiting task, if any. Under load, many small transactions become few larger ones;
alone, a request is decided at once. With a process pool (one task at a time per
process) every batch has one request.

After a batch of several requests (a burst of first starts) the next leader waits
a few milliseconds for more to arrive before it takes the lock, so that bursts are
decided in few transactions; a lone request never waits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Request = TypeVar("Request")
Decision = TypeVar("Decision")


class _Slot(Generic[Request, Decision]):
    """One waiting request: its turn (a held lock, released when decided or made leader)."""

    __slots__ = ("decision", "error", "finished", "lead", "request", "turn")

    def __init__(self, request: Request) -> None:
        self.request = request
        self.turn = threading.Lock()
        self.turn.acquire()
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
        linger: float = 0.005,
    ) -> None:
        self._decide = decide
        self._largest = largest
        self._linger = linger
        self._lock = threading.Lock()
        self._waiting: list[_Slot[Request, Decision]] = []
        self._leading = False
        self._last_batch = 0

    def decide(self, request: Request) -> Decision:
        """Decide `request`, together with any others waiting; raise what deciding raised."""
        slot: _Slot[Request, Decision] = _Slot(request)
        with self._lock:
            self._waiting.append(slot)
            if not self._leading:
                self._leading = slot.lead = True
        while not slot.finished:
            if slot.lead:
                self._run_one_batch(slot)
            else:
                slot.turn.acquire()
        if slot.error is not None:
            raise slot.error
        return slot.decision  # type: ignore[return-value]

    def _run_one_batch(self, leader: _Slot[Request, Decision]) -> None:
        """Decide the oldest waiting requests; then lead on, or pass the lead to a waiting one."""
        if self._last_batch > 1 and len(self._waiting) < self._largest:
            time.sleep(self._linger)  # a burst: let more of it arrive
        with self._lock:
            batch, self._waiting = self._waiting[: self._largest], self._waiting[self._largest :]
            self._last_batch = len(batch)
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
            successor = None
            if leader.finished:
                leader.lead = False
                if self._waiting:
                    successor = self._waiting[0]
                    successor.lead = True
                else:
                    self._leading = False
        for slot in batch:
            if slot is not leader:
                slot.turn.release()
        if successor is not None:
            successor.turn.release()
