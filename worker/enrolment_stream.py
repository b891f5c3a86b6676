"""Enrolment messages decided in batches, beside Celery's one-task-per-message path.

Celery runs each message as a task of its own: a request object, a hand-over to
a pool thread, a trace, one write of the result and one acknowledgement. For an
editor's start that machinery costs more than the decision itself. A worker with
a thread pool therefore hands the `avtor.enrol` messages it receives to this
stream instead: one thread takes every message waiting at that moment, decides
them together (holders of a seat at a glance, with one read; the rest in one
locked transaction), stores all the decisions in two Redis round trips (whatever
the batch's size), and only then acknowledges the messages, in one more.

The delivery guarantees are those of a task with late acknowledgement: a
message is acknowledged after its decision is stored, a worker that dies first
leaves it unacknowledged in Redis (it comes back and is decided again, which a
repeated start survives: it never takes a second seat), and a decision whose
storing fails puts the message back on its queue.

Anything unusual goes to Celery's own path, which answers it as before: a
message that is redelivered (its deliveries are counted there), scheduled (eta),
expiring, revoked, not JSON, of the wrong shape, or whose batch could not be
decided (the store is unreachable: the task retries with a back-off).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from celery import states
from celery.exceptions import InvalidTaskError
from celery.worker.state import revoked

from domain.enrolment import EnrolmentDecision, EnrolmentRequest, InvalidEnrolment, read_enrolment_request
from worker.guard import check_body_shape, check_headers
from worker.transport import acknowledge

log = logging.getLogger(__name__)

ENROL_TASK = "avtor.enrol"
MAX_ID_LENGTH = 200
# Celery renders every result for its "succeeded" log line and task event; a decision's
# first characters (allowed, outcome) are what an operator reads there, and the whole
# decision is in the result backend.
RESULT_REPR_CHARACTERS = 48
# Celery's own path answers messages with these headers (delays, expiry).
_SCHEDULING_HEADERS = ("eta", "expires", "countdown")

Decide = Callable[[Sequence[EnrolmentRequest]], Sequence[EnrolmentDecision]]
StoreResults = Callable[[Sequence[tuple[str, dict[str, Any]]]], None]
# A message, its task id and the decision stored for it.
Decided = tuple[Any, str, dict[str, Any]]


class _Unusual(Exception):
    """A message for Celery's own path to answer."""


class EnrolmentStream:
    """Takes `avtor.enrol` messages from the consumer and decides them in batches on a thread of its own."""

    def __init__(
        self,
        decide: Decide,
        store_results: StoreResults,
        fall_back: Callable[[Any], None],
        connection_errors: tuple[type[BaseException], ...] = (),
        largest: int = 100,
        on_settled: Callable[[Sequence[Decided], float], None] = lambda decided, seconds: None,
    ) -> None:
        self._decide = decide
        self._on_settled = on_settled
        self._store_results = store_results
        self._fall_back = fall_back
        self._connection_errors = connection_errors
        self._largest = largest
        self._waiting: deque[Any] = deque()
        self._changed = threading.Condition()
        self._busy = False
        self._stopping = False
        self._handed_back: set[int] = set()  # this batch's messages already given to Celery's path
        self._thread = threading.Thread(target=self._run, name="avtor-enrolment-stream", daemon=True)
        self._thread.start()

    def offer(self, message: Any) -> bool:
        """Take `message` if this stream decides it; False leaves it to Celery's own path."""
        if self._stopping or not _takes(message) or not self._thread.is_alive():
            return False
        with self._changed:
            self._waiting.append(message)
            self._changed.notify()
        return True

    def stop(self, timeout: float | None = None) -> bool:
        """Decide what was taken, then end the thread; False if it did not end within `timeout`."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def idle(self) -> bool:
        """Whether nothing is waiting or being decided."""
        with self._changed:
            return not self._waiting and not self._busy

    def _run(self) -> None:
        while True:
            with self._changed:
                self._busy = False
                while not self._waiting and not self._stopping:
                    self._changed.wait()
                if not self._waiting:
                    return
                count = min(len(self._waiting), self._largest)
                batch = [self._waiting.popleft() for _ in range(count)]
                self._busy = True
            started = time.monotonic()
            decided: Sequence[Decided] = ()
            self._handed_back.clear()
            try:
                decided = self.decide_batch(batch)
            except Exception:  # never lose the thread: the rest of the batch goes to Celery's path
                log.exception("A batch of enrolments could not be handled; Celery's path takes it.")
                for message in batch:
                    if id(message) not in self._handed_back and not getattr(message, "acknowledged", False):
                        self._fall_back_safely(message)
            try:
                self._on_settled(decided, time.monotonic() - started)
            except Exception:
                log.exception("Could not tell the consumer that a batch was settled.")

    def decide_batch(self, batch: Sequence[Any]) -> list[Decided]:
        """Decide, store and acknowledge `batch`; hand what it cannot decide to Celery's path.

        Returns the messages decided, with their decisions.
        """
        answers: list[Decided] = []
        pending: list[tuple[Any, str, EnrolmentRequest]] = []
        for message in batch:
            try:
                task_id, read = _read(message)
            except _Unusual:
                self._fall_back_safely(message)
                continue
            if isinstance(read, EnrolmentDecision):
                answers.append((message, task_id, read.as_message()))
            else:
                pending.append((message, task_id, read))
        if pending:
            try:
                decisions = self._decide([request for _, _, request in pending])
            except Exception as error:
                # Most often the store is unreachable: each task retries with a back-off.
                log.warning("%d enrolment(s) go to Celery's path after %r.", len(pending), error)
                for message, _, _ in pending:
                    self._fall_back_safely(message)
            else:
                answers.extend(
                    (message, task_id, decision.as_message())
                    for (message, task_id, _), decision in zip(pending, decisions, strict=True)
                )
        if not answers:
            return []
        try:
            self._store_results([(task_id, result) for _, task_id, result in answers])
        except Exception:
            log.exception(
                "Could not store %d decision(s); their messages go back to the queue.", len(answers)
            )
            for message, _, _ in answers:
                try:
                    message.reject_log_error(log, self._connection_errors, requeue=True)
                except Exception:  # unacknowledged, it returns after the visibility timeout
                    log.exception("Could not put a message back on its queue.")
            return []
        try:
            acknowledge([message for message, _, _ in answers])
        except Exception:
            # Decided and stored: if they come back, they are answered as decided.
            log.exception("Could not acknowledge %d decided enrolment(s).", len(answers))
        return answers

    def _fall_back_safely(self, message: Any) -> None:
        self._handed_back.add(id(message))
        try:
            self._fall_back(message)
        except Exception:  # still unacknowledged: it returns after the visibility timeout
            log.exception("Could not hand a message to Celery's path.")


def _takes(message: Any) -> bool:
    """Whether `message` is an everyday start: a first delivery of avtor.enrol, due now, not revoked."""
    headers = getattr(message, "headers", None)
    if not isinstance(headers, dict) or headers.get("task") != ENROL_TASK:
        return False
    task_id = headers.get("id")
    if not isinstance(task_id, str) or not 0 < len(task_id) <= MAX_ID_LENGTH:
        return False
    if any(headers.get(name) is not None for name in _SCHEDULING_HEADERS):
        return False
    delivery_info = getattr(message, "delivery_info", None)
    if not isinstance(delivery_info, dict) or delivery_info.get("redelivered"):
        return False
    return task_id not in revoked


def _read(message: Any) -> tuple[str, EnrolmentRequest | EnrolmentDecision]:
    """The task id and the start a message asks about, or the decision refusing an invalid one."""
    task_id: str = message.headers["id"]
    if task_id in revoked:  # revoked while it waited: Celery's path records it as revoked
        raise _Unusual()
    try:
        check_headers(message.headers)
        body = message.decode()
    except Exception as error:  # headers of the wrong types, not JSON, a content type not accepted
        raise _Unusual() from error
    if not isinstance(body, list | tuple) or len(body) != 3:
        raise _Unusual()
    args, kwargs, embed = body
    try:
        check_body_shape(args, kwargs, embed)
    except InvalidTaskError as error:
        raise _Unusual() from error
    try:
        return task_id, read_enrolment_request(args, kwargs)
    except InvalidEnrolment as invalid:
        log.info("Invalid enrolment request %s: %s", task_id, invalid)
        return task_id, invalid.decision()
    except Exception as error:  # whatever else the arguments hold: Celery's path answers it
        raise _Unusual() from error


def result_writer(backend: Any) -> StoreResults:
    """Store decisions as Celery's Redis result backend stores a task's success, in two round trips.

    As with Celery, a result already stored as a success is never overwritten.
    """

    def write(results: Sequence[tuple[str, dict[str, Any]]]) -> None:
        items = []
        for task_id, result in results:
            meta = backend._get_result_meta(result, states.SUCCESS, None, None)
            meta["task_id"] = task_id
            meta["children"] = []  # as Celery stores it for a task that started none
            items.append((backend.get_key_for_task(task_id), backend.encode(meta)))
        backend.ensure(_write_items, (backend, items))

    return write


def _write_items(backend: Any, items: Sequence[tuple[bytes, str]]) -> None:
    stored = backend.client.mget([key for key, _ in items])
    with backend.client.pipeline(transaction=False) as pipe:
        for (key, value), current in zip(items, stored, strict=True):
            if current is not None and _succeeded(backend, current):
                continue
            pipe.set(key, value, ex=backend.expires or None)
            pipe.publish(key, value)
        pipe.execute()


def _succeeded(backend: Any, stored: bytes) -> bool:
    try:
        return bool(backend.decode(stored).get("status") == states.SUCCESS)
    except Exception:  # not a result Celery could read either: it is replaced
        return False
