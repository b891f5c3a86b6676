"""Who may use the console and the HTTP API: administrators, their sessions, API tokens.

Passwords are kept only as slow hashes (a PasswordHasher); session and token secrets
only as SHA-256 digests, so that a copy of the store lets nobody in.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from domain.refusals import Refused

MAX_NAME_LENGTH = 100
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024

# Sign-in attempts: after this many wrong passwords within the window, for one name or
# from one address, further attempts are refused until the window has moved on.
FAILURE_WINDOW = timedelta(minutes=1)
MAX_FAILURES = 10

TOKEN_PREFIX = "avtor_"  # noqa: S105 (the prefix that marks a token, no secret)


class SignInRefused(Refused):
    """Wrong name or password; the message never says which."""

    def __init__(self) -> None:
        super().__init__("The name or the password is wrong: check both and sign in again.")


class SignInThrottled(Refused):
    """Too many wrong passwords lately for this name or from this address."""

    def __init__(self, retry_after: timedelta) -> None:
        self.retry_after = retry_after
        seconds = max(1, round(retry_after.total_seconds()))
        super().__init__(
            f"Too many wrong passwords for this name or from this address: wait {seconds} s, "
            "then sign in again."
        )


@dataclass(frozen=True)
class Administrator:
    """Someone who may sign in to the console."""

    name: str
    password_hash: str
    created_at: datetime
    created_by: str
    password_changed_at: datetime


@dataclass(frozen=True)
class ConsoleSession:
    """A signed-in administrator's session; the store knows only its secret's digest."""

    digest: str
    administrator: str
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime

    def expired(self, now: datetime, timeout: timedelta) -> bool:
        """Whether the session has been idle longer than `timeout`."""
        return now - self.last_seen_at > timeout


@dataclass(frozen=True)
class ApiToken:
    """A bearer token of an API client; the store knows only its secret's digest."""

    name: str
    digest: str
    shown: str
    created_at: datetime
    created_by: str
    last_used_at: datetime | None = None


@dataclass(frozen=True)
class RecentFailures:
    """Wrong passwords within the failure window, for one name and from one address."""

    for_name: int
    from_address: int
    oldest: datetime | None


class AccessStore(Protocol):
    """Administrators, sessions, tokens and failed sign-ins, kept beside the seat ledger."""

    def administrator(self, name: str) -> Administrator | None: ...

    def administrators(self) -> list[Administrator]: ...

    def add_administrator(self, administrator: Administrator) -> bool: ...

    def set_password(self, name: str, password_hash: str, at: datetime) -> bool: ...

    def remove_administrator(self, name: str) -> bool: ...

    def add_session(self, session: ConsoleSession) -> None: ...

    def session(self, digest: str) -> ConsoleSession | None: ...

    def touch_session(self, digest: str, at: datetime) -> None: ...

    def remove_session(self, digest: str) -> None: ...

    def remove_sessions_idle_since(self, before: datetime) -> None: ...

    def record_failure(self, name: str, address: str, at: datetime) -> None: ...

    def recent_failures(self, name: str, address: str, since: datetime) -> RecentFailures: ...

    def forget_failures(self, name: str, before: datetime | None = None) -> None: ...

    def add_token(self, token: ApiToken) -> bool: ...

    def token(self, digest: str) -> ApiToken | None: ...

    def tokens(self) -> list[ApiToken]: ...

    def touch_token(self, digest: str, at: datetime) -> None: ...

    def remove_token(self, name: str) -> bool: ...


class PasswordHasher(Protocol):
    """Makes and checks slow password hashes."""

    def hash(self, password: str) -> str: ...

    def verify(self, password_hash: str, password: str) -> bool: ...

    def needs_rehash(self, password_hash: str) -> bool: ...


def administrator_name(raw: object) -> str:
    """The name an administrator signs in with: NFKC, trimmed, case-folded, printable."""
    if not isinstance(raw, str):
        raise Refused("Give the administrator's name.")
    name = unicodedata.normalize("NFKC", raw).strip().casefold()
    if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise Refused(
            f"An administrator's name is 1 to {MAX_NAME_LENGTH} printable characters: {raw[:40]!r} is not."
        )
    return name


def token_name(raw: object) -> str:
    """The name of an API token, which says who uses it (a CMS, a script)."""
    if not isinstance(raw, str) or not raw.strip() or len(raw.strip()) > MAX_NAME_LENGTH:
        raise Refused(
            f"Name the token with 1 to {MAX_NAME_LENGTH} printable characters, e.g. the CMS using it."
        )
    name = raw.strip()
    if not name.isprintable():
        raise Refused("A token's name holds printable characters only.")
    return name


def check_password(password: str) -> None:
    """Refuse a password too short or too long to be kept."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Refused(
            f"The password has {len(password)} characters; use at least {MIN_PASSWORD_LENGTH} "
            "(a passphrase of several words is easiest)."
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise Refused(f"The password is longer than {MAX_PASSWORD_LENGTH} characters: use a shorter one.")


def new_secret() -> str:
    """A fresh unguessable secret for a session."""
    return secrets.token_urlsafe(32)


def new_token_secret() -> str:
    """A fresh API token, recognisable by its prefix."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What the store keeps of a session or token secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def shown_token(secret: str) -> str:
    """How a token is shown after its creation: its prefix and last four characters."""
    return f"{secret[: len(TOKEN_PREFIX) + 4]}…{secret[-4:]}"


def throttled_for(failures: RecentFailures, now: datetime) -> timedelta | None:
    """How long sign-ins must wait, or None if they may be tried now."""
    if max(failures.for_name, failures.from_address) < MAX_FAILURES or failures.oldest is None:
        return None
    return max(timedelta(seconds=1), failures.oldest + FAILURE_WINDOW - now)
