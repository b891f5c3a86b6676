"""Enrol an editor and read the decision, with nothing but redis-py.

Every command this client sends is one the host's Redis user may run: XADD on the
requests stream, BLPOP and LRANGE on decision lists, and on connecting AUTH (or
HELLO) and SELECT. It does not send CLIENT SETINFO or CLIENT MAINT_NOTIFICATIONS,
which the host's user may not run.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import redis

from host_client.protocol import (
    REQUESTS_STREAM,
    Decision,
    check_request_id,
    decision_key,
    read_decision,
    request_fields,
)

DEFAULT_TIMEOUT = 10.0
# The manager's own default Redis (AVTOR_REDIS_URL unset).
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# Where `enrol()` and `EnrolmentClient()` look for the Redis URL, in this order.
REDIS_URL_VARIABLES = ("AVTOR_HOST_REDIS_URL", "AVTOR_REDIS_URL")

# redis-py 5 and newer send CLIENT SETINFO on every new connection, and recent versions
# speaking RESP3 ask for maintenance notifications (CLIENT MAINT_NOTIFICATIONS); the
# host's user may run neither. The refusals are harmless (redis-py ignores them) but land
# in the server's ACL log, so the client sends neither. Versions with `redis.DriverInfo`
# say so with driver_info=None, older ones with lib_name=None and lib_version=None.
_QUIET_CONNECTIONS: dict[str, Any] = (
    {"driver_info": None} if hasattr(redis, "DriverInfo") else {"lib_name": None, "lib_version": None}
)
try:
    from redis.maint_notifications import MaintNotificationsConfig
except ImportError:  # redis-py before maintenance notifications
    pass
else:
    _QUIET_CONNECTIONS["maint_notifications_config"] = MaintNotificationsConfig(enabled=False)


class EnrolmentTimeout(TimeoutError):
    """No decision arrived in time. The request stays in the stream and will still be decided."""

    def __init__(self, request_id: str, timeout: float, redis_url: str) -> None:
        self.request_id = request_id
        self.timeout = timeout
        self.redis_url = redis_url
        super().__init__(
            f"No decision on enrolment request {request_id} within {timeout:g} s at {redis_url}. "
            f"The request stays in the stream {REQUESTS_STREAM} and will still be decided once an "
            "enrolment consumer (avtor-enrolment-consumer) reads it: wait for it again, or send it "
            "again with the same request_id (it never takes a second seat)."
        )


class EnrolmentClient:
    """Sends "editor started" entries and reads their decisions, on one Redis connection pool."""

    def __init__(self, redis_url: str | None = None, *, client: redis.Redis | None = None) -> None:
        """Connect to `redis_url`, else the Redis the environment names (see `redis_url_from_environment`).

        `client` is an existing redis-py client to use instead (its connection options are its own).
        """
        self.redis_url = redis_url or redis_url_from_environment()
        self.redis = (
            client if client is not None else redis.Redis.from_url(self.redis_url, **_QUIET_CONNECTIONS)
        )

    def send(
        self,
        username: str,
        request_id: str | None = None,
        occurred_at: str | datetime | None = None,
        host: str | None = None,
    ) -> str:
        """Append one editor start to the stream; return its request id (a new UUID unless given).

        `request_id`: 1 to 128 printable ASCII characters; the same id sent again never takes a
        second seat. `occurred_at`: RFC 3339 text, or a datetime that knows its time zone.
        `host`: the host installation's name (up to 64 characters), kept in the audit log.
        """
        request_id = check_request_id(request_id) if request_id is not None else str(uuid.uuid4())
        fields = request_fields(username, request_id, occurred_at, host)
        self.redis.xadd(REQUESTS_STREAM, dict(fields.items()))
        return request_id

    def decision(self, request_id: str, timeout: float = DEFAULT_TIMEOUT) -> Decision:
        """Wait up to `timeout` seconds for the decision on `request_id` and take it (BLPOP).

        Raises EnrolmentTimeout if none arrives in time.
        """
        if not timeout > 0:
            raise ValueError("timeout must be more than 0 seconds (BLPOP would wait forever)")
        key = decision_key(request_id)
        deadline = time.monotonic() + timeout
        longest = self._longest_wait()
        while (remaining := deadline - time.monotonic()) > 0:
            # Redis rounds a wait under a millisecond to 0, which means "forever": never send one.
            wait = max(0.01, remaining if longest is None else min(remaining, longest))
            popped: Sequence[bytes] | None = self.redis.blpop([key], wait)  # type: ignore[assignment]
            if popped is not None:
                return read_decision(popped[1])
        raise EnrolmentTimeout(request_id, timeout, redact_url(self.redis_url))

    def _longest_wait(self) -> float | None:
        """The longest one BLPOP may wait: well within the connection's read timeout, if it has one.

        redis-py 8 gives every connection a read timeout of 5 s unless told otherwise; a BLPOP
        waiting as long would end in a TimeoutError instead of its empty answer.
        """
        read_timeout = self.redis.connection_pool.connection_kwargs.get("socket_timeout")
        if read_timeout is None:
            return None
        return float(read_timeout) - min(1.0, float(read_timeout) / 2)

    def peek(self, request_id: str) -> Decision | None:
        """The decision on `request_id` if it is there, without taking it (LRANGE 0 0); else None."""
        found: list[bytes] = self.redis.lrange(decision_key(request_id), 0, 0)  # type: ignore[assignment]
        return read_decision(found[0]) if found else None

    def enrol(
        self,
        username: str,
        request_id: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        occurred_at: str | datetime | None = None,
        host: str | None = None,
    ) -> Decision:
        """Send an editor start and wait for its decision (EnrolmentTimeout if none arrives in time)."""
        return self.decision(self.send(username, request_id, occurred_at, host), timeout)

    def close(self) -> None:
        """Close the Redis connections."""
        self.redis.close()

    def __enter__(self) -> EnrolmentClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def enrol(
    username: str,
    request_id: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    occurred_at: str | datetime | None = None,
    host: str | None = None,
    redis_url: str | None = None,
) -> Decision:
    """Enrol one editor start on a connection of its own and return the decision.

    The Redis is `redis_url`, else the one the environment names (AVTOR_HOST_REDIS_URL, then
    AVTOR_REDIS_URL), else the manager's default. Raises EnrolmentTimeout if no decision arrives.
    """
    with EnrolmentClient(redis_url) as client:
        return client.enrol(username, request_id, timeout, occurred_at=occurred_at, host=host)


def redis_url_from_environment() -> str:
    """AVTOR_HOST_REDIS_URL, else AVTOR_REDIS_URL, else the manager's default Redis."""
    for variable in REDIS_URL_VARIABLES:
        value = os.environ.get(variable, "").strip()
        if value:
            return value
    return DEFAULT_REDIS_URL


# The manager's config.hide_password, copied: this library depends on redis-py alone.
_QUERY_PASSWORD = re.compile(r"(?i)([?&]password=)[^&#]*")
_USER_PASSWORD = re.compile(r"(//[^/@:]*:)[^@]*@")


def redact_url(url: str) -> str:
    """`url` with its password (in the user part or the query) replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL urllib can read (a stray bracket): hide everything between // and @
        return _USER_PASSWORD.sub(r"\1***@", _QUERY_PASSWORD.sub(r"\1***", url))
    shown = url
    if parts.password is not None:
        host = parts.netloc.rpartition("@")[2]
        shown = shown.replace(parts.netloc, f"{parts.username or ''}:***@{host}", 1)
    return _QUERY_PASSWORD.sub(r"\1***", shown)
