"""The manager as a host or the administrator's screen sees it: tasks sent through Redis, results awaited."""

from __future__ import annotations

from typing import Any

from celery import Celery

from config import load_settings
from worker.app import create_app

RESULT_TIMEOUT = 60.0


def celery_client(redis_url: str) -> Celery:
    """A Celery app that only sends tasks and reads their results, configured like the manager's."""
    return create_app(load_settings(redis_url=redis_url))


def call(app: Celery, task: str, timeout: float = RESULT_TIMEOUT, **kwargs: Any) -> dict[str, Any]:
    """Send `task` with `kwargs` and wait for its JSON result."""
    result: dict[str, Any] = app.send_task(task, kwargs=kwargs).get(timeout=timeout)
    return result
