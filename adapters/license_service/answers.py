"""Reading the license service's 200 answer: its signature and its `license` object."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from domain.licenses import SERVICE_STATUSES, ServiceAnswer
from domain.moments import parse_instant


class UnusableAnswer(ValueError):
    """A 200 answer that cannot be trusted or read; the message says why."""


def public_key_from_base64(text: str) -> Ed25519PublicKey:
    """The vendor's public key from its configured form: base64 of 32 raw bytes."""
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))


def canonical_license_json(license: dict[str, Any]) -> bytes:
    """The bytes the vendor signs: the contract's canonical JSON of `license` as received."""
    return json.dumps(license, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def check_signature(license: dict[str, Any], signature: object, public_key: Ed25519PublicKey) -> None:
    """Raise UnusableAnswer unless `signature` is the vendor's signature of `license`."""
    if not isinstance(signature, str) or not signature:
        raise UnusableAnswer(
            "the answer carries no signature although AVTOR_LICENSE_SERVER_PUBLIC_KEY is set; "
            "it was not trusted"
        )
    try:
        public_key.verify(base64.b64decode(signature, validate=True), canonical_license_json(license))
    except (binascii.Error, ValueError, InvalidSignature):
        raise UnusableAnswer(
            "the answer's signature does not verify with AVTOR_LICENSE_SERVER_PUBLIC_KEY; it was not "
            "trusted (it may have been altered on the way, or the key is not the vendor's)"
        ) from None


def read_license(license: dict[str, Any]) -> ServiceAnswer:
    """The fields of a `license` object; extra fields are ignored, wrong ones refused."""
    key, status, seats = license.get("key"), license.get("status"), license.get("seats")
    if not isinstance(key, str) or not key.strip():
        raise UnusableAnswer("the answer's license has no key")
    if status not in SERVICE_STATUSES:
        raise UnusableAnswer(f"the answer's license status {status!r} is not one the contract defines")
    if isinstance(seats, bool) or not isinstance(seats, int) or seats < 0:
        raise UnusableAnswer(f"the answer's seats {seats!r} are not a whole number, 0 or more")
    customer = license.get("customer", "")
    return ServiceAnswer(
        key=key.strip().upper(),
        status=str(status),
        seats=seats,
        expires_at=None if license.get("expires_at") is None else _instant(license, "expires_at"),
        issued_at=_instant(license, "issued_at"),
        customer=customer if isinstance(customer, str) else "",
    )


def _instant(license: dict[str, Any], name: str) -> datetime:
    value = license.get(name)
    try:
        if not isinstance(value, str):
            raise ValueError
        return parse_instant(value)
    except ValueError:
        raise UnusableAnswer(f"the answer's {name} {value!r} is not an RFC 3339 instant") from None
