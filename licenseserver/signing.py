"""The development server's Ed25519 key pair, and signing answers as the contract says."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

DEVELOPMENT_KEY_PAIR = "development-key-pair.json"
DEVELOPMENT_WARNING = (
    "DEVELOPMENT ONLY. This key pair ships with the Avtor License Manager, so anyone can sign with it. "
    "It signs answers of the development license server; never configure its public key in production."
)


class KeyPairError(ValueError):
    """A key pair file that cannot be used."""


def canonical_json(signed: dict[str, Any]) -> bytes:
    """The bytes the signature covers: the contract's canonical JSON of the signed object.

    The object is `license` in v1 and `answer` in v2.
    """
    return json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class Signer:
    """Signs answers (v1's `license`, v2's `answer`) with one Ed25519 private key."""

    private_key: Ed25519PrivateKey
    is_development_key: bool

    @property
    def public_key(self) -> str:
        """The public key, base64 of its 32 raw bytes: the value of AVTOR_LICENSE_SERVER_PUBLIC_KEY."""
        raw = self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return base64.b64encode(raw).decode("ascii")

    def sign(self, signed: dict[str, Any]) -> str:
        """The base64 signature of `signed`."""
        return base64.b64encode(self.private_key.sign(canonical_json(signed))).decode("ascii")


def development_signer() -> Signer:
    """The key pair shipped with the server for development, demos and tests."""
    text = (files("licenseserver") / "data" / DEVELOPMENT_KEY_PAIR).read_text(encoding="utf-8")
    return Signer(_private_key(json.loads(text), DEVELOPMENT_KEY_PAIR), is_development_key=True)


def load_signer(path: Path) -> Signer:
    """A key pair written by `--generate-key-pair`."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise KeyPairError(f"The key pair file {path} cannot be read: {error.strerror}.") from None
    except ValueError as error:
        raise KeyPairError(f"The key pair file {path} is not valid JSON: {error}.") from None
    return Signer(_private_key(document, str(path)), is_development_key=False)


def write_new_key_pair(path: Path) -> Signer:
    """Generate a key pair and write it to `path` (private: readable by its owner only)."""
    signer = Signer(Ed25519PrivateKey.generate(), is_development_key=False)
    private = signer.private_key.private_bytes_raw()
    document = {
        "private_key": base64.b64encode(private).decode("ascii"),
        "public_key": signer.public_key,
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return signer


def _private_key(document: object, where: str) -> Ed25519PrivateKey:
    if not isinstance(document, dict) or not isinstance(document.get("private_key"), str):
        raise KeyPairError(f'{where} must be a JSON object with "private_key" (base64 of 32 bytes).')
    try:
        raw = base64.b64decode(document["private_key"], validate=True)
    except (binascii.Error, ValueError):
        raise KeyPairError(f"The private key in {where} is not base64.") from None
    if len(raw) != 32:
        raise KeyPairError(f"The private key in {where} is {len(raw)} bytes; an Ed25519 private key is 32.")
    private_key = Ed25519PrivateKey.from_private_bytes(raw)
    signer = Signer(private_key, is_development_key=False)
    if document.get("public_key") not in (None, signer.public_key):
        raise KeyPairError(f"The public key in {where} does not belong to its private key.")
    return private_key
