"""The base of every task: stops a message that keeps coming back (a poison message).

With late acknowledgement, a message whose task kills its worker process is put
back and delivered again. Each redelivery is counted in Redis; past a few, the
message is kept in the dead-letter list and answered with an error instead of
being run again. First deliveries, by far the most frequent, cost nothing extra.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task
from celery.exceptions import InvalidTaskError
from celery.worker.request import Request

from worker.dead_letters import record_dead_letter

log = logging.getLogger(__name__)

MAX_DELIVERIES = 5
DELIVERY_COUNT_KEY = "avtor.deliveries:{id}"
DELIVERY_COUNT_SECONDS = 24 * 3600


class PoisonMessage(Exception):
    """A message was delivered too many times and has been set aside."""


class GuardedTask(Task):  # type: ignore[misc]
    """A task that refuses to run a message redelivered too many times."""

    abstract = True
    Request = "worker.guard:GuardedRequest"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request
        delivery_info = request.delivery_info or {}
        if delivery_info.get("redelivered") and not request.called_directly:
            deliveries = self._count_delivery(request.id)
            if deliveries > MAX_DELIVERIES:
                record_dead_letter(
                    self.backend.client,
                    f"delivered {deliveries} times: stopped as a poison message",
                    task=self.name,
                    task_id=request.id,
                    message={"args": args, "kwargs": kwargs},
                )
                raise PoisonMessage(
                    f"This message was delivered {deliveries} times without finishing; it has been set "
                    "aside in the avtor.dead-letter list for an operator."
                )
        return super().__call__(*args, **kwargs)

    def _count_delivery(self, task_id: str) -> int:
        key = DELIVERY_COUNT_KEY.format(id=task_id)
        client = self.backend.client
        with client.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, DELIVERY_COUNT_SECONDS)
            count, _ = pipe.execute()
        # The first delivery was not counted.
        return int(count) + 1


class GuardedRequest(Request):  # type: ignore[misc]
    """A task request whose headers and body must have the types Celery relies on.

    Celery trusts them: a `stamped_headers` that is a number, for one, stops the
    worker when the task is about to run. Checked here, a wrong message becomes
    an InvalidTaskError, which the consumer answers and keeps.
    """

    def __init__(self, message: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(message, *args, **kwargs)
        check_headers(self._request_dict)
        check_body_shape(self._args, self._kwargs, _embed_of(message, kwargs))
        # Whether a result is stored is the task's decision, not the message's: a decision
        # is the contract's answer and is stored whatever the message asks.
        self._ignore_result = self._task.ignore_result
        self._request_dict["ignore_result"] = self._task.ignore_result


_TEXT_HEADERS = ("shadow", "root_id", "parent_id", "group", "argsrepr", "kwargsrepr", "origin", "lang")
_COUNT_HEADERS = ("retries", "group_index", "replaced_task_nesting")
MAX_RETRIES_HEADER = 1000


def check_headers(headers: dict[str, Any]) -> None:
    """Refuse headers of a type Celery does not expect."""
    for name in _TEXT_HEADERS:
        if headers.get(name) is not None and not isinstance(headers[name], str):
            raise InvalidTaskError(f"the {name} header must be a string or null")
    for name in _COUNT_HEADERS:
        value = headers.get(name)
        if value is not None and not (_is_whole(value) and 0 <= value <= MAX_RETRIES_HEADER):
            raise InvalidTaskError(
                f"the {name} header must be a whole number from 0 to {MAX_RETRIES_HEADER} or null"
            )
    stamped = headers.get("stamped_headers")
    if stamped is not None and not (
        isinstance(stamped, list) and all(isinstance(name, str) for name in stamped)
    ):
        raise InvalidTaskError("the stamped_headers header must be a list of strings or null")
    if headers.get("stamps") is not None and not isinstance(headers["stamps"], dict):
        raise InvalidTaskError("the stamps header must be an object or null")
    timelimit = headers.get("timelimit")
    if timelimit is not None and not (
        isinstance(timelimit, list | tuple)
        and len(timelimit) == 2
        and all(limit is None or _is_number(limit) for limit in timelimit)
    ):
        raise InvalidTaskError(f"timelimit must be [soft, hard] seconds or null, not {timelimit!r}")


def check_body_shape(args: Any, kwargs: Any, embed: Any) -> None:
    """Refuse a body that is not [args list, kwargs object, embed object without callbacks]."""
    if not isinstance(args, list | tuple):
        raise InvalidTaskError(f"the body's args must be a JSON array, not {type(args).__name__}")
    if not isinstance(kwargs, dict):
        raise InvalidTaskError(f"the body's kwargs must be a JSON object, not {type(kwargs).__name__}")
    if embed is None:
        return
    if not isinstance(embed, dict):
        raise InvalidTaskError(
            f"the body's third item must be a JSON object or null, not {type(embed).__name__}"
        )
    chained = sorted(str(name) for name, value in embed.items() if value is not None)
    if chained:
        raise InvalidTaskError(
            f"the manager's tasks take no callbacks, chains or chords ({', '.join(chained)})"
        )


def _embed_of(message: Any, options: dict[str, Any]) -> Any:
    body = options.get("body") if options.get("decoded") else message.payload
    if not isinstance(body, list | tuple) or len(body) != 3:
        raise InvalidTaskError("the body must be a JSON array [args, kwargs, embed]")
    return body[2]


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
