"""The manager as a host or the administrator's screen sees it: tasks sent through Redis, results awaited."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.exceptions import TimeoutError as ResultTimeout

from config import load_settings
from tasks.sending import send_admin_task
from tests.support.workers import CeleryProcess
from worker.app import create_app

RESULT_TIMEOUT = 60.0


def celery_client(redis_url: str) -> Celery:
    """A Celery app that only sends tasks and reads their results, configured like the manager's."""
    return create_app(load_settings(redis_url=redis_url))


class Manager:
    """Sends tasks to running workers; a result that never comes fails with the workers' logs."""

    def __init__(self, app: Celery, *workers: CeleryProcess) -> None:
        self.app = app
        self.workers = workers

    def call(self, task: str, timeout: float = RESULT_TIMEOUT, **kwargs: Any) -> dict[str, Any]:
        """Send `task` with `kwargs`, as the command line does, and wait for its JSON result."""
        try:
            result: dict[str, Any] = send_admin_task(self.app, task, kwargs).get(timeout=timeout)
        except ResultTimeout:
            logs = "\n".join(f"--- {worker.name}:\n{worker.log()[-4000:]}" for worker in self.workers)
            raise AssertionError(f"{task} had no result within {timeout:.0f} s.\n{logs}") from None
        return result
