"""Asking the workers through Redis: send an `avtor.admin.*` task, and wait for its answer or not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from config import Settings, hide_password

# Long enough for a check that the license service answers slowly, with every retry.
DEFAULT_WAIT_SECONDS = 120.0
REDIS_CHECK_SECONDS = 3.0


class WorkersUnavailable(Exception):
    """Redis or the workers could not be reached; the message says what to check."""


@dataclass(frozen=True)
class Queued:
    """A task sent without waiting for its answer."""

    task_id: str


def ask_workers(settings: Settings, task: str, kwargs: dict[str, Any], wait: bool, timeout: float) -> Any:
    """Send `task` to the admin queue; return its result, or Queued when not waiting."""
    where = str(settings.redis_url)
    check_redis(settings.redis_url.get_secret_value())
    # Celery and Redis are imported only by the commands that talk to the workers: every
    # other command starts faster without them.
    import redis
    from celery.exceptions import TimeoutError as NoResultInTime
    from kombu.exceptions import OperationalError

    from worker.app import create_app

    app = create_app(settings)
    try:
        outcome = _send_and_wait(app, task, kwargs, wait, timeout, NoResultInTime)
    except (OperationalError, redis.RedisError) as error:
        raise WorkersUnavailable(_unreachable(where, error)) from None
    finally:
        app.close()
    if outcome is None:
        raise WorkersUnavailable(
            f"No worker answered within {timeout:g} s. Check that a worker of the avtor.admin queue runs "
            f"(celery -A worker worker -Q avtor.admin) and uses Redis at {where}. The request stays queued "
            "and runs when a worker takes it: see `avtorlm license list` later."
        )
    if isinstance(outcome, Queued):
        return outcome
    state, answer = outcome
    if state != "SUCCESS":
        raise WorkersUnavailable(
            f"The workers could not carry out the request ({state}: {answer}). "
            "See the admin worker's log for the cause, then try again."
        )
    return answer


def _send_and_wait(
    app: Any, task: str, kwargs: dict[str, Any], wait: bool, timeout: float, timed_out: type[Exception]
) -> Queued | tuple[str, Any] | None:
    """Send the task; its state and answer, Queued when not waiting, None when none came in time.

    The task's AsyncResult lives only in this call, and the result backend stops waiting
    for it here: one still pending when Python shuts down unsubscribes from Redis too late
    and prints a traceback after a good message.
    """
    from tasks.sending import send_admin_task

    result = send_admin_task(app, task, kwargs)
    if not wait:
        return Queued(result.id)
    try:
        answer = result.get(timeout=timeout, propagate=False)
    except timed_out:
        return None
    finally:
        app.backend.remove_pending_result(result)
    return result.state, answer


def check_redis(url: str) -> None:
    """Raise WorkersUnavailable, naming Redis by its URL, unless Redis answers a PING."""
    import redis

    client = redis.Redis.from_url(
        url, socket_connect_timeout=REDIS_CHECK_SECONDS, socket_timeout=REDIS_CHECK_SECONDS
    )
    try:
        client.ping()
    except redis.RedisError as error:
        raise WorkersUnavailable(_unreachable(hide_password(url), error)) from None
    finally:
        client.close()


def _unreachable(where: str, error: Exception) -> str:
    return (
        f"Redis at {where} cannot be reached ({error}): nothing was sent to the workers. "
        "Check that Redis runs and that AVTOR_REDIS_URL names it, then try again."
    )
