"""Reading a signed answer of the license service (contract v2) and the checks it must pass.

An answer counts only if its signature verifies with the vendor's public key, it
echoes the nonce and installation id of the request just sent, and it was issued
within ten minutes of this machine's clock. Whether it was issued after the
answer already accepted for the key is the license's own rule
(`domain.licenses.License.record_answer`).
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from domain.licenses import SERVICE_STATUSES, ServiceAnswer
from domain.moments import format_instant, parse_instant

# How far an answer's issued_at may be from this machine's clock, either way.
FRESHNESS = timedelta(minutes=10)
KNOWN, UNKNOWN = "known", "unknown"


class UntrustedAnswer(ValueError):
    """An answer that failed one of the contract's checks; the message names the check and what to do."""


@dataclass(frozen=True)
class ValidationRequest:
    """What one validation asks; every attempt is a new request with a nonce of its own."""

    license_key: str
    installation_id: str
    seats_in_use: int
    nonce: str

    @classmethod
    def new(cls, license_key: str, installation_id: str, seats_in_use: int) -> ValidationRequest:
        """A request with a fresh nonce from a cryptographic random source."""
        return cls(license_key, installation_id, seats_in_use, secrets.token_urlsafe(16))

    def body(self, product: str) -> dict[str, Any]:
        """The JSON body of `POST /v2/licenses/validate`."""
        return {
            "license_key": self.license_key,
            "installation_id": self.installation_id,
            "product": product,
            "seats_in_use": self.seats_in_use,
            "nonce": self.nonce,
        }


@dataclass(frozen=True)
class SignedAnswer:
    """An answer that passed the checks: the key is known (with what it grants) or unknown."""

    outcome: str
    issued_at: datetime
    license: ServiceAnswer | None = None
    message: str = ""


def public_key_from_base64(text: str) -> Ed25519PublicKey:
    """The vendor's public key from its configured form: base64 of 32 raw bytes."""
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))


def canonical_json(answer: dict[str, Any]) -> bytes:
    """The bytes the vendor signs: the contract's canonical JSON of `answer` as received."""
    return json.dumps(answer, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def read_answer(
    document: dict[str, Any], request: ValidationRequest, public_key: Ed25519PublicKey, now: datetime
) -> SignedAnswer:
    """The answer of `document` to `request`, or UntrustedAnswer naming the check it failed."""
    answer = document.get("answer")
    if not isinstance(answer, dict):
        raise UntrustedAnswer(
            "the answer carries no signed answer object, although every answer of the license service "
            "is signed: check that AVTOR_LICENSE_SERVER_URL names the vendor's license service"
        )
    check_signature(answer, document.get("signature"), public_key)
    if answer.get("nonce") != request.nonce:
        raise UntrustedAnswer(
            "the answer's nonce is not the one this request sent, so it may be a replay of an earlier "
            "answer: if this repeats, check what sits between the manager and AVTOR_LICENSE_SERVER_URL "
            "(a proxy or a cache)"
        )
    if answer.get("installation_id") != request.installation_id:
        raise UntrustedAnswer(
            f"the answer is for installation {str(answer.get('installation_id'))[:40]!r}, not for this "
            f"installation ({request.installation_id}), so it may have been captured from another one: "
            "check what sits between the manager and AVTOR_LICENSE_SERVER_URL"
        )
    issued_at = _instant(answer, "issued_at")
    if abs(now - issued_at) > FRESHNESS:
        direction = "before" if issued_at < now else "after"
        raise UntrustedAnswer(
            f"the answer was issued at {format_instant(issued_at)}, more than "
            f"{FRESHNESS.total_seconds() / 60:.0f} minutes {direction} this machine's clock "
            f"({format_instant(now)}): check that this machine's clock is right (NTP); if it is, the "
            "answer may be a replay of an old one"
        )
    outcome = answer.get("outcome")
    if outcome == UNKNOWN:
        message = answer.get("message")
        text = message.strip() if isinstance(message, str) and message.strip() else ""
        return SignedAnswer(UNKNOWN, issued_at, message=text or "No license with this key exists.")
    if outcome != KNOWN:
        raise UntrustedAnswer(f"the answer's outcome {str(outcome)[:40]!r} is not one the contract defines")
    license = answer.get("license")
    if not isinstance(license, dict):
        raise UntrustedAnswer("the answer says the key is known but carries no license object")
    read = read_license(license, issued_at)
    if read.key != request.license_key:
        raise UntrustedAnswer("the answer is about another key than the one asked about")
    return SignedAnswer(KNOWN, issued_at, license=read)


def check_signature(answer: dict[str, Any], signature: object, public_key: Ed25519PublicKey) -> None:
    """Raise UntrustedAnswer unless `signature` is the vendor's signature of `answer`."""
    if not isinstance(signature, str) or not signature:
        raise UntrustedAnswer(
            "the answer carries no signature, although every answer of the license service is signed: "
            "check that AVTOR_LICENSE_SERVER_URL names the vendor's license service"
        )
    try:
        public_key.verify(base64.b64decode(signature, validate=True), canonical_json(answer))
    except (binascii.Error, ValueError, InvalidSignature):
        raise UntrustedAnswer(
            "the answer's signature does not verify with AVTOR_LICENSE_SERVER_PUBLIC_KEY: check that the "
            "variable holds the public key the vendor gave you; if it does, the answer was altered on "
            "the way or does not come from the vendor"
        ) from None


def read_license(license: dict[str, Any], issued_at: datetime) -> ServiceAnswer:
    """The fields of a `license` object; extra fields are ignored, wrong ones refused."""
    key, status, seats = license.get("key"), license.get("status"), license.get("seats")
    if not isinstance(key, str) or not key.strip():
        raise UntrustedAnswer("the answer's license has no key")
    if status not in SERVICE_STATUSES:
        raise UntrustedAnswer(f"the answer's license status {status!r} is not one the contract defines")
    if isinstance(seats, bool) or not isinstance(seats, int) or seats < 0:
        raise UntrustedAnswer(f"the answer's seats {seats!r} are not a whole number, 0 or more")
    customer = license.get("customer", "")
    return ServiceAnswer(
        key=key.strip().upper(),
        status=str(status),
        seats=seats,
        expires_at=None if license.get("expires_at") is None else _instant(license, "expires_at"),
        issued_at=issued_at,
        customer=customer if isinstance(customer, str) else "",
    )


def _instant(document: dict[str, Any], name: str) -> datetime:
    value = document.get(name)
    try:
        if not isinstance(value, str):
            raise ValueError
        return parse_instant(value)
    except ValueError:
        raise UntrustedAnswer(f"the answer's {name} {str(value)[:40]!r} is not an RFC 3339 instant") from None
