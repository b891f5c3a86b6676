"""Administrators, signing in and out, and API tokens."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.access import (
    FAILURE_WINDOW,
    AccessStore,
    Administrator,
    ApiToken,
    ConsoleSession,
    PasswordHasher,
    SignInRefused,
    SignInThrottled,
    administrator_name,
    check_password,
    digest,
    new_secret,
    new_token_secret,
    shown_token,
    throttled_for,
    token_name,
)
from domain.refusals import Refused

# A session's "last seen" is written at most this often: polling pages do not write at all,
# and a busy administrator costs one write a minute.
TOUCH_EVERY = timedelta(seconds=30)
# A token's "last used" is precise enough to the minute.
TOKEN_TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class SignedIn:
    """A new session: its secret goes into the cookie, never into the store."""

    secret: str
    session: ConsoleSession


@dataclass(frozen=True)
class NewToken:
    """A token as created: its secret is shown once, then only its digest is kept."""

    secret: str
    token: ApiToken


def add_administrator(
    raw_name: str, password: str, added_by: str, access: AccessStore, hasher: PasswordHasher, now: datetime
) -> Administrator:
    """Create an administrator who signs in with `password`."""
    name = administrator_name(raw_name)
    check_password(password)
    administrator = Administrator(name, hasher.hash(password), now, added_by, now)
    if not access.add_administrator(administrator):
        raise Refused(
            f"An administrator named {name} exists already: "
            f"change the password with `avtorlm admin set-password {name}`."
        )
    return administrator


def list_administrators(access: AccessStore) -> list[Administrator]:
    """Every administrator, by name."""
    return sorted(access.administrators(), key=lambda administrator: administrator.name)


def remove_administrator(raw_name: str, access: AccessStore) -> str:
    """Remove an administrator; their sessions end at once."""
    name = administrator_name(raw_name)
    if not access.remove_administrator(name):
        raise Refused(f"There is no administrator named {name}: see `avtorlm admin list`.")
    return name


def set_password(
    raw_name: str, password: str, access: AccessStore, hasher: PasswordHasher, now: datetime
) -> str:
    """Give an administrator a new password; their sessions end at once."""
    name = administrator_name(raw_name)
    check_password(password)
    if not access.set_password(name, hasher.hash(password), now):
        raise Refused(f"There is no administrator named {name}: see `avtorlm admin list`.")
    return name


def sign_in(
    raw_name: str,
    password: str,
    address: str,
    access: AccessStore,
    hasher: PasswordHasher,
    now: datetime,
    idle_timeout: timedelta,
) -> SignedIn:
    """Check a name and password; refuse after too many wrong passwords for the name or the address."""
    try:
        name = administrator_name(raw_name)
    except Refused:
        raise SignInRefused() from None
    wait = throttled_for(access.recent_failures(name, address, now - FAILURE_WINDOW), now)
    if wait is not None:
        raise SignInThrottled(wait)
    administrator = access.administrator(name)
    # An unknown name costs as much as a wrong password, so timing tells nothing.
    stored = administrator.password_hash if administrator else _UNKNOWN_NAME_HASH.get(hasher)
    if not hasher.verify(stored, password) or administrator is None:
        access.record_failure(name, address, now)
        raise SignInRefused()
    if hasher.needs_rehash(administrator.password_hash):
        access.set_password(name, hasher.hash(password), administrator.password_changed_at)
    access.forget_failures(name)
    access.remove_sessions_idle_since(now - idle_timeout)
    secret = new_secret()
    session = ConsoleSession(digest(secret), name, secrets.token_urlsafe(32), now, now)
    access.add_session(session)
    return SignedIn(secret, session)


def session_of(
    secret: str, access: AccessStore, now: datetime, idle_timeout: timedelta, active: bool = True
) -> ConsoleSession | None:
    """The live session of `secret`, or None; `active` requests keep it from expiring."""
    key = digest(secret)
    session = access.session(key)
    if session is None:
        return None
    if session.expired(now, idle_timeout) or access.administrator(session.administrator) is None:
        access.remove_session(key)
        return None
    if active and now - session.last_seen_at >= TOUCH_EVERY:
        access.touch_session(key, now)
    return session


def sign_out(secret: str, access: AccessStore) -> None:
    """End the session of `secret`."""
    access.remove_session(digest(secret))


def create_token(raw_name: str, created_by: str, access: AccessStore, now: datetime) -> NewToken:
    """Make a bearer token for an API client; its secret is returned once."""
    name = token_name(raw_name)
    secret = new_token_secret()
    token = ApiToken(name, digest(secret), shown_token(secret), now, created_by)
    if not access.add_token(token):
        raise Refused(
            f"A token named {name!r} exists already: revoke it first (`avtorlm token revoke {name}`) "
            "or choose another name."
        )
    return NewToken(secret, token)


def list_tokens(access: AccessStore) -> list[ApiToken]:
    """Every token, by name."""
    return sorted(access.tokens(), key=lambda token: token.name)


def revoke_token(raw_name: str, access: AccessStore) -> str:
    """Revoke a token: requests bearing it are refused from now on."""
    name = token_name(raw_name)
    if not access.remove_token(name):
        raise Refused(f"There is no token named {name!r}: see `avtorlm token list`.")
    return name


def token_of(secret: str, access: AccessStore, now: datetime) -> ApiToken | None:
    """The token whose secret this is, or None."""
    token = access.token(digest(secret))
    if token is None:
        return None
    if token.last_used_at is None or now - token.last_used_at >= TOKEN_TOUCH_EVERY:
        access.touch_token(token.digest, now)
    return token


class _UnknownNameHash:
    """A hash of a random password, made once per hasher, checked when the name is unknown."""

    def __init__(self) -> None:
        self._hashes: dict[int, str] = {}

    def get(self, hasher: PasswordHasher) -> str:
        key = id(hasher)
        if key not in self._hashes:
            self._hashes[key] = hasher.hash(secrets.token_urlsafe(16))
        return self._hashes[key]


_UNKNOWN_NAME_HASH = _UnknownNameHash()
