"""The client of the vendor's license service: `POST /v2/licenses/validate`, signed answers only.

Every attempt is a new request with a fresh nonce, and its answer counts only if
it passes the contract's checks (`answers.read_answer`); an answer that fails one
is "could not verify", logged as an error naming the check.

Retries follow a urllib3 `Retry` (429 and 5xx, connection errors and timeouts,
backoff with jitter, Retry-After respected). It is not mounted on the session's
adapter, because urllib3 would send the same body again, and the contract wants
a new nonce for every retry: this client asks the policy, through `Retry`'s
public methods, whether and when to try again, and builds a new request each time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader, MaxRetryError
from urllib3.util.retry import Retry

from adapters.license_service.answers import (
    UNKNOWN,
    UntrustedAnswer,
    ValidationRequest,
    public_key_from_base64,
    read_answer,
)
from domain.licenses import masked_key
from domain.moments import utc_now
from domain.ports import Rejected, Unverifiable, ValidationResult, Verified

log = logging.getLogger(__name__)

VALIDATE_PATH = "/v2/licenses/validate"
PRODUCT = "avtor"
USER_AGENT = "avtor-license-manager/2"
# The contract's transient answers: the service could not answer, try again later.
TRANSIENT_STATUSES = frozenset({429, *range(500, 600)})


def retry_policy(attempts: int, first_pause: float, longest_pause: float) -> Retry:
    """How one validation is tried again: `attempts` in all, pauses doubling up to `longest_pause`."""
    return Retry(
        total=attempts - 1,
        allowed_methods=frozenset({"POST"}),
        status_forcelist=TRANSIENT_STATUSES,
        respect_retry_after_header=True,
        backoff_factor=first_pause,
        backoff_max=longest_pause,
        backoff_jitter=first_pause,
        raise_on_status=False,
        raise_on_redirect=False,
    )


@dataclass(frozen=True)
class _Transient:
    """A failure worth another try, with what urllib3's Retry needs to count it."""

    reason: str
    response: Any = None  # the urllib3 response of a transient status
    error: Exception | None = None
    retry_after: float | None = None


class HttpLicenseService:
    """The license service over HTTP; one per process, its session reused across calls."""

    def __init__(
        self,
        base_url: str,
        public_key: str,
        connect_timeout: float,
        read_timeout: float,
        attempts: int = 3,
        first_pause: float = 0.5,
        longest_pause: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = base_url.rstrip("/") + VALIDATE_PATH
        self._public_key = public_key_from_base64(public_key)
        self._timeout = (connect_timeout, read_timeout)
        self._attempts = attempts
        self._longest_pause = longest_pause
        self._retry = retry_policy(attempts, first_pause, longest_pause)
        self._sleep = sleep
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        # No resending inside urllib3: a retry is a new request with a new nonce (see above).
        for scheme in ("https://", "http://"):
            self._session.mount(scheme, HTTPAdapter(max_retries=Retry(total=0, read=False, redirect=False)))

    @property
    def longest_validation(self) -> timedelta:
        """The longest one `validate` can take: every attempt timing out, and the pauses between."""
        connect, read = self._timeout
        return timedelta(
            seconds=self._attempts * (connect + read) + (self._attempts - 1) * self._longest_pause
        )

    def validate(self, key: str, installation_id: str, seats_in_use: int) -> ValidationResult:
        """Ask the service what `key` grants: verified, rejected, or could not verify."""
        retry = self._retry
        while True:
            outcome = self._ask(ValidationRequest.new(key, installation_id, seats_in_use))
            if not isinstance(outcome, _Transient):
                return outcome
            try:
                retry = retry.increment(
                    method="POST", url=self.url, response=outcome.response, error=outcome.error
                )
            except MaxRetryError:
                return self._give_up(key, outcome)
            pause = outcome.retry_after if outcome.retry_after is not None else retry.get_backoff_time()
            if pause > self._longest_pause:
                return self._give_up(key, outcome)
            log.info(
                "License %s: %s; trying again in %.1f s with a new request.",
                masked_key(key),
                outcome.reason,
                pause,
            )
            self._sleep(pause)

    def _give_up(self, key: str, outcome: _Transient) -> Unverifiable:
        log.warning("License %s could not be validated: %s.", masked_key(key), outcome.reason)
        retry_after = None if outcome.retry_after is None else timedelta(seconds=outcome.retry_after)
        return Unverifiable(outcome.reason, retry_after)

    def _ask(self, request: ValidationRequest) -> ValidationResult | _Transient:
        try:
            response = self._session.post(
                self.url, json=request.body(PRODUCT), timeout=self._timeout, allow_redirects=False
            )
        except requests.Timeout as error:
            return _Transient(
                f"the license service did not answer within {self._timeout[1]:g} s", error=error
            )
        except requests.ConnectionError as error:
            return _Transient(
                f"the license service at {self.url} cannot be reached ({_connection_problem(error)})",
                error=error,
            )
        except requests.RequestException as error:
            return _Transient(
                f"the request to the license service failed ({type(error).__name__})", error=error
            )
        return self._read(request, response)

    def _read(self, request: ValidationRequest, response: requests.Response) -> ValidationResult | _Transient:
        status = response.status_code
        if self._retry.is_retry("POST", status, "Retry-After" in response.headers):
            return _Transient(
                f"the license service answered {status} {response.reason}",
                response=response.raw,
                retry_after=self._retry_after(status, response),
            )
        try:
            document = response.json()
        except ValueError:
            return _Transient(
                f"the license service answered {status} with a body that is not JSON", response=response.raw
            )
        if not isinstance(document, dict):
            return Unverifiable(f"the license service answered {status} with JSON that is not an object")
        if status == 400:
            return Rejected(_message(document, "The request was malformed."), malformed_request=True)
        if status == 404 and "answer" not in document:
            return self._untrusted(
                request.license_key,
                f"the license service answered 404 {response.reason} without a signed answer: an unsigned "
                "rejection is never trusted and changes nothing; check AVTOR_LICENSE_SERVER_URL",
            )
        if status not in (200, 404):
            return Unverifiable(
                f"the license service answered {status} {response.reason}, which its contract does not "
                "define here: check AVTOR_LICENSE_SERVER_URL"
            )
        try:
            answer = read_answer(document, request, self._public_key, utc_now())
        except UntrustedAnswer as problem:
            return self._untrusted(
                request.license_key, f"the license service's answer was not trusted: {problem}"
            )
        if answer.outcome == UNKNOWN:
            return Rejected(answer.message, issued_at=answer.issued_at)
        assert answer.license is not None
        return Verified(answer.license)

    def _untrusted(self, key: str, reason: str) -> Unverifiable:
        # Loud: an answer that fails a check may be forged, replayed or meant for someone else.
        log.error("License %s could not be verified: %s.", masked_key(key), reason)
        return Unverifiable(reason)

    def _retry_after(self, status: int, response: requests.Response) -> float | None:
        """Retry-After in seconds, where the policy respects it (429, 503); None if absent or unreadable."""
        if not self._retry.respect_retry_after_header or status not in Retry.RETRY_AFTER_STATUS_CODES:
            return None
        try:
            return self._retry.get_retry_after(response.raw)
        except InvalidHeader:
            return None


def _message(document: dict[str, Any], default: str) -> str:
    message = document.get("message")
    return message.strip() if isinstance(message, str) and message.strip() else default


def _connection_problem(error: requests.ConnectionError) -> str:
    """The operating system's words for why the connection failed, e.g. "Connection refused"."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        reason = getattr(cause, "reason", None)
        cause = reason if isinstance(reason, BaseException) else (cause.__cause__ or cause.__context__)
    return str(error)[:200]
