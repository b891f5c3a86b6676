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
from collections.abc import Callable
from typing import Any

import redis
from celery.worker.consumer import Consumer
from vine import promise

from domain.enrolment import InvalidEnrolment
from worker.dead_letters import record_dead_letter
from worker.transport import network_errors

log = logging.getLogger(__name__)

ENROL_TASK = "avtor.enrol"
MAX_ID_LENGTH = 200


class MalformedMessage(Exception):
    """A message the worker could not run; stored as the task's result."""


class GuardedConsumer(Consumer):  # type: ignore[misc]
    """Celery's consumer: every message it cannot run is answered and kept, never fatal."""

    _dead_letters: redis.Redis | None = None

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

        return on_task_received

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


def _headers(message: Any) -> dict[str, Any]:
    headers = getattr(message, "headers", None)
    return headers if isinstance(headers, dict) else {}
