"""Which faults are worth another try, and how long a retry may wait."""

from __future__ import annotations

from adapters.sql import TRANSIENT_STORE_ERRORS
from config import Settings
from worker.app import max_retry_countdown

__all__ = ["TRANSIENT_STORE_ERRORS", "longest_retry_wait"]


def longest_retry_wait(settings: Settings) -> int:
    """The longest wait before a retry, in the whole seconds Celery's backoff counts: within the cap."""
    return int(max_retry_countdown(settings))
