"""What the console's pages and API calls work with, composed once when `avtorlm serve` starts."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from config import Settings
from domain.access import AccessStore, PasswordHasher
from domain.ports import LicenseService, Store
from domain.seat_policy import OverLimitPolicy


class WorkersUnreachable(Exception):
    """Redis or the admin worker could not be reached; the message says what to check."""


# Asks the admin worker to run a task: (task name, keyword arguments) -> its answer.
AskWorkers = Callable[[str, dict[str, Any]], Any]


class Installation(Protocol):
    """The installation as every command sees it (`cli.context.Context` is one)."""

    settings: Settings

    def store(self) -> Store: ...

    def license_service(self) -> LicenseService: ...

    def now(self) -> datetime: ...


@dataclass
class Console:
    """The store, the clock, the license service and the workers, for every request of the console."""

    installation: Installation
    access: AccessStore
    passwords: PasswordHasher
    ask_workers: AskWorkers
    _license_service: LicenseService | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    @property
    def settings(self) -> Settings:
        """The installation's settings."""
        return self.installation.settings

    @property
    def store(self) -> Store:
        """The seat ledger."""
        return self.installation.store()

    @property
    def grace_period(self) -> timedelta:
        """How long a license keeps its seats unconfirmed."""
        return self.settings.grace_period

    @property
    def over_limit_policy(self) -> OverLimitPolicy:
        """Who is refused while more users hold seats than licensed."""
        return OverLimitPolicy(self.settings.over_limit_policy)

    @property
    def session_timeout(self) -> timedelta:
        """How long a session lasts without activity."""
        return self.settings.console_session_timeout

    def now(self) -> datetime:
        """The current instant, in UTC."""
        return self.installation.now()

    def license_service(self) -> LicenseService:
        """The vendor's license service, made on first use and kept (one HTTP session)."""
        with self._lock:
            if self._license_service is None:
                self._license_service = self.installation.license_service()
            return self._license_service
