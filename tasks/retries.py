"""Which faults are worth another try, and how long to wait before it."""

from __future__ import annotations

import random

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from config import current_settings
from worker.app import max_retry_countdown

# The store was briefly unreachable or busy (a restart, a lock held too long).
TRANSIENT_STORE_ERRORS = (OperationalError, InterfaceError, DisconnectionError)


def backoff(retries: int, first: float = 0.2) -> float:
    """Exponential backoff with full jitter, capped well within the visibility timeout."""
    ceiling = min(max_retry_countdown(current_settings()), first * 2**retries)
    return random.uniform(first / 2, ceiling)
