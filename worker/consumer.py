"""The worker's message consumer, hardened against anything a host may push.

Celery logs and discards a message it cannot decode, one without a task name,
or one naming a task no worker knows, and a message of the right envelope but
the wrong shape can even stop the worker. Hosts push to Redis directly, so such
messages are expected: each is answered (an enrolment with an `invalid_request`
decision, anything else with an error result), kept in the dead-letter list for
an operator, and acknowledged. The worker keeps going.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import redis
from celery.bootsteps import RUN
from celery.concurrency.thread import TaskPool as ThreadTaskPool
from celery.worker.consumer import Consumer
from vine import promise

from domain.enrolment import EnrolmentDecision, EnrolmentRequest, InvalidEnrolment
from domain.services.enrolment import enrol_editors
from worker import wiring
from worker.dead_letters import record_dead_letter
from worker.enrolment_stream import (
    ENROL_TASK,
    MAX_ID_LENGTH,
    RESULT_REPR_CHARACTERS,
    Decided,
    EnrolmentStream,
    result_writer,
)
from worker.transport import network_errors

log = logging.getLogger(__name__)

# How long a warm shutdown waits for the enrolment stream to finish what it took.
STREAM_STOP_SECONDS = 30.0


class MalformedMessage(Exception):
    """A message the worker could not run; stored as the task's result."""


class GuardedConsumer(Consumer):  # type: ignore[misc]
    """Celery's consumer: every message it cannot run is answered and kept, never fatal.

    With a thread pool, everyday enrolment messages go to an enrolment stream that
    decides them in batches (worker/enrolment_stream.py); everything else, and what
    the stream cannot decide, takes Celery's path.
    """

    _dead_letters: redis.Redis | None = None
    _stream: EnrolmentStream | None = None
    _run_as_task: Callable[[Any], Any] | None = None

    def create_task_handler(self, promise: Any = promise) -> Callable[[Any], Any]:
        handle = super().create_task_handler(promise)
        # kombu counts KeyError as a connection error; here it means a malformed message.
        connection_errors = network_errors(tuple(self.connection_errors or ()))

        def on_task_received(message: Any) -> Any:
            try:
                return handle(message)
            except connection_errors:
                raise
            except Exception as error:
                log.exception("A message could not be handled; it is answered and kept.")
                self._set_aside(message, f"malformed message: {error!r}")
                return None

        stream = self._enrolment_stream()
        if stream is None:
            return on_task_received
        # What the stream cannot decide is handled here, on the consumer's own thread.
        self._run_as_task = on_task_received

        def on_message(message: Any) -> Any:
            return None if stream.offer(message) else on_task_received(message)

        return on_message

    def _enrolment_stream(self) -> EnrolmentStream | None:
        """The stream deciding this worker's enrolments in batches: with a thread pool only."""
        if not isinstance(self.pool, ThreadTaskPool):
            return None  # a process pool decides each start in the process that runs its task
        if self._stream is None:
            self._stream = EnrolmentStream(
                decide=_decide,
                store_results=result_writer(self.app.backend),
                fall_back=self._hand_back_soon,
                connection_errors=network_errors(tuple(self.connection_errors or ())),
                on_settled=self._settled,
            )
        return self._stream

    def _hand_back_soon(self, message: Any) -> None:
        """From the stream's thread: run `message` as a Celery task, on the event loop."""
        self.call_soon(self._hand_back, message)

    def _hand_back(self, message: Any) -> None:
        """On the event loop: run a message the stream handed back as a Celery task.

        Not once the worker is stopping: its pool may be gone. Left unacknowledged, the
        message goes back to its queue when the connection closes.
        """
        if self._run_as_task is None or self.blueprint is None or self.blueprint.state != RUN:
            log.info("A start handed back while the worker stops goes back to its queue.")
            return
        self._run_as_task(message)

    def _settled(self, decided: Sequence[Decided], seconds: float) -> None:
        """From the stream's thread, after a batch: the event loop takes over.

        Acknowledged messages may let the loop take more (the prefetch limit), so it is
        woken even when there is nothing else to do.
        """
        self.call_soon(self._after_batch, decided, seconds)

    def _after_batch(self, decided: Sequence[Decided], seconds: float) -> None:
        """On the event loop: what Celery does when tasks end, for the stream's decisions."""
        try:
            # After a reconnection while tasks ran, Celery lowers the prefetch count and
            # raises it again with every acknowledgement: acknowledgements of the stream too.
            if decided and not self._maximum_prefetch_restored and self.restart_count > 0:
                for _ in decided:
                    self._restore_prefetch_count_after_connection_restart(None)
            self._send_events(decided, seconds)
        except Exception:  # on the event loop: an error here must not stop the worker
            log.exception("Could not finish a batch of %d decision(s) on the event loop.", len(decided))

    def _send_events(self, decided: Sequence[Decided], seconds: float) -> None:
        """Task events for the stream's decisions, as Celery sends them for a task (`-E`, Flower)."""
        dispatcher = self.event_dispatcher
        if not decided or dispatcher is None or not dispatcher.enabled:
            return
        if dispatcher.groups and "task" not in dispatcher.groups:
            return
        runtime = seconds / len(decided)
        for message, task_id, result in decided:
            headers = _headers(message)
            dispatcher.send(
                "task-received",
                uuid=task_id,
                name=ENROL_TASK,
                args=_text_or_none(headers.get("argsrepr")),
                kwargs=_text_or_none(headers.get("kwargsrepr")),
                root_id=_text_or_none(headers.get("root_id")),
                parent_id=_text_or_none(headers.get("parent_id")),
                retries=0,
                eta=None,
                expires=None,
            )
            dispatcher.send(
                "task-succeeded", uuid=task_id, result=repr(result)[:RESULT_REPR_CHARACTERS], runtime=runtime
            )

    def shutdown(self) -> None:
        # Decide and acknowledge what the stream took while the connection is still open.
        if self._stream is not None and not self._stream.stop(timeout=STREAM_STOP_SECONDS):
            log.warning("Enrolments still being decided at shutdown return after the visibility timeout.")
        super().shutdown()

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        self._set_aside(message, f"undecodable message: {exc!r}", acknowledge=False)
        super().on_decode_error(message, exc)

    def on_unknown_message(self, body: Any, message: Any) -> None:
        self._set_aside(message, "not a task message", acknowledge=False)
        super().on_unknown_message(body, message)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        # Celery itself stores an error result naming the unknown task.
        self._keep(f"unknown task: {exc!r}", message)
        super().on_unknown_task(body, message, exc)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        self._set_aside(message, f"invalid task message: {exc}", acknowledge=False)
        super().on_invalid_task(body, message, exc)

    def _set_aside(self, message: Any, reason: str, acknowledge: bool = True) -> None:
        """Answer the message's sender if it can be told, keep the message, acknowledge it."""
        self._keep(reason, message)
        try:
            self._answer(message, reason)
        except Exception:
            log.exception("Could not store an answer for a malformed message.")
        if acknowledge and not getattr(message, "acknowledged", True):
            message.ack_log_error(log, self.connection_errors)

    def _keep(self, reason: str, message: Any) -> None:
        headers = _headers(message)
        if self._dead_letters is None:
            self._dead_letters = redis.Redis.from_url(self.app.conf.broker_url, socket_timeout=5)
        record_dead_letter(
            self._dead_letters, reason, task=headers.get("task"), task_id=headers.get("id"), message=message
        )

    def _answer(self, message: Any, reason: str) -> None:
        headers = _headers(message)
        task_id = headers.get("id")
        if not isinstance(task_id, str) or not 0 < len(task_id) <= MAX_ID_LENGTH:
            return
        if headers.get("task") == ENROL_TASK:
            decision = InvalidEnrolment(
                f"the message could not be read ({reason}); send it as the enrolment contract describes."
            ).decision()
            self.app.backend.store_result(task_id, decision.as_message(), "SUCCESS")
        else:
            self.app.backend.mark_as_failure(task_id, MalformedMessage(reason))


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _decide(requests: Sequence[EnrolmentRequest]) -> list[EnrolmentDecision]:
    return enrol_editors(requests, wiring.store(), wiring.now(), wiring.settings().grace_period)


def _headers(message: Any) -> dict[str, Any]:
    headers = getattr(message, "headers", None)
    return headers if isinstance(headers, dict) else {}
