"""Which faults are worth another try, and how long a retry may wait."""

from __future__ import annotations

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from config import Settings
from worker.app import max_retry_countdown

# The store was briefly unreachable or busy (a restart, a lock held too long).
TRANSIENT_STORE_ERRORS = (OperationalError, InterfaceError, DisconnectionError)


def longest_retry_wait(settings: Settings) -> int:
    """The longest wait before a retry, in the whole seconds Celery's backoff counts: within the cap."""
    return int(max_retry_countdown(settings))
