"""The client of the vendor's license service: `POST /v1/licenses/validate` with timeouts and retries.

Transient failures (no connection, a timeout, 429, 5xx, a body that is not JSON)
are tried again a few times with exponential backoff and jitter, honouring
Retry-After; then the key "could not be verified". A 404 or 400 is an answer.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from adapters.license_service.answers import (
    UnusableAnswer,
    check_signature,
    public_key_from_base64,
    read_license,
)
from domain.licenses import masked_key
from domain.ports import Rejected, Unverifiable, ValidationResult, Verified

log = logging.getLogger(__name__)

VALIDATE_PATH = "/v1/licenses/validate"
PRODUCT = "avtor"
USER_AGENT = "avtor-license-manager/1"


@dataclass(frozen=True)
class _Transient:
    """A failure worth another try."""

    reason: str
    retry_after: float | None = None


class HttpLicenseService:
    """The license service over HTTP; one per process, its session reused across calls."""

    def __init__(
        self,
        base_url: str,
        public_key: str | None,
        connect_timeout: float,
        read_timeout: float,
        attempts: int = 3,
        first_pause: float = 0.5,
        longest_pause: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = base_url.rstrip("/") + VALIDATE_PATH
        self._public_key = None if public_key is None else public_key_from_base64(public_key)
        self._timeout = (connect_timeout, read_timeout)
        self._attempts = attempts
        self._first_pause = first_pause
        self._longest_pause = longest_pause
        self._sleep = sleep
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT

    @property
    def longest_validation(self) -> timedelta:
        """The longest one `validate` can take: every attempt timing out, and the pauses between."""
        connect, read = self._timeout
        return timedelta(
            seconds=self._attempts * (connect + read) + (self._attempts - 1) * self._longest_pause
        )

    def validate(self, key: str, installation_id: str, seats_in_use: int) -> ValidationResult:
        """Ask the service what `key` grants: verified, rejected, or could not verify."""
        body = {
            "license_key": key,
            "installation_id": installation_id,
            "product": PRODUCT,
            "seats_in_use": seats_in_use,
        }
        for attempt in range(1, self._attempts + 1):
            outcome = self._ask(key, body)
            if not isinstance(outcome, _Transient):
                return outcome
            pause = self._pause(attempt, outcome.retry_after)
            if attempt == self._attempts or pause is None:
                log.warning("License %s could not be validated: %s.", masked_key(key), outcome.reason)
                retry_after = None if outcome.retry_after is None else timedelta(seconds=outcome.retry_after)
                return Unverifiable(outcome.reason, retry_after)
            log.info(
                "License %s: %s; trying again in %.1f s (attempt %d of %d).",
                masked_key(key),
                outcome.reason,
                pause,
                attempt + 1,
                self._attempts,
            )
            self._sleep(pause)
        raise AssertionError("unreachable: the last attempt always returns")

    def _ask(self, key: str, body: dict[str, Any]) -> ValidationResult | _Transient:
        try:
            response = self._session.post(self.url, json=body, timeout=self._timeout, allow_redirects=False)
        except requests.Timeout:
            return _Transient(f"the license service did not answer within {self._timeout[1]:g} s")
        except requests.ConnectionError as error:
            return _Transient(
                f"the license service at {self.url} cannot be reached ({_connection_problem(error)})"
            )
        except requests.RequestException as error:
            return _Transient(f"the request to the license service failed ({type(error).__name__})")
        return self._read(key, response)

    def _read(self, key: str, response: requests.Response) -> ValidationResult | _Transient:
        status = response.status_code
        if status == 429 or status >= 500:
            return _Transient(
                f"the license service answered {status} {response.reason}", _retry_after(response)
            )
        try:
            document = response.json()
        except ValueError:
            return _Transient(f"the license service answered {status} with a body that is not JSON")
        if not isinstance(document, dict):
            return Unverifiable(f"the license service answered {status} with JSON that is not an object")
        if status == 404 and document.get("error") == "unknown_license":
            return Rejected(_message(document, "No license with this key exists."))
        if status == 400:
            return Rejected(_message(document, "The request was malformed."), malformed_request=True)
        if status != 200:
            return Unverifiable(
                f"the license service answered {status} {response.reason}, which its contract does not "
                "define here: check AVTOR_LICENSE_SERVER_URL"
            )
        return self._verified(key, document)

    def _verified(self, key: str, document: dict[str, Any]) -> ValidationResult:
        license = document.get("license")
        try:
            if not isinstance(license, dict):
                raise UnusableAnswer("the answer has no license object")
            if self._public_key is not None:
                check_signature(license, document.get("signature"), self._public_key)
            answer = read_license(license)
            if answer.key != key:
                raise UnusableAnswer("the answer is about another key")
        except UnusableAnswer as problem:
            # Loud: an answer that fails these checks may have been tampered with.
            log.error("License %s: the license service's answer was refused: %s.", masked_key(key), problem)
            return Unverifiable(f"the license service's answer was refused: {problem}")
        return Verified(answer)

    def _pause(self, attempt: int, retry_after: float | None) -> float | None:
        """How long to wait before the next attempt; None if the service asks for longer than we wait."""
        ceiling = min(self._longest_pause, self._first_pause * 2.0 ** (attempt - 1))
        pause: float = ceiling / 2 + random.uniform(0, ceiling / 2)
        if retry_after is None:
            return pause
        if retry_after > self._longest_pause:
            return None
        return max(pause, retry_after)


def _message(document: dict[str, Any], default: str) -> str:
    message = document.get("message")
    return message.strip() if isinstance(message, str) and message.strip() else default


def _retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds: a number of seconds or an HTTP date; None if absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _connection_problem(error: requests.ConnectionError) -> str:
    """The operating system's words for why the connection failed, e.g. "Connection refused"."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        reason = getattr(cause, "reason", None)
        cause = reason if isinstance(reason, BaseException) else (cause.__cause__ or cause.__context__)
    return str(error)[:200]
