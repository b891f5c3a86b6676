"""The development license server over HTTP: contract v1 and v2 side by side, plus `/_dev/*` switches."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from domain.licenses import masked_key
from licenseserver.faults import Faults, FaultsError, read_faults
from licenseserver.keys import (
    KeyRecord,
    KeysFileError,
    canonical_key,
    changed_key,
    format_instant,
    new_key,
    save_keys,
)
from licenseserver.signing import Signer

log = logging.getLogger("licenseserver")

VALIDATE_V1_PATH = "/v1/licenses/validate"
VALIDATE_V2_PATH = "/v2/licenses/validate"
DEV_KEYS_PREFIX = "/_dev/keys/"
# v2's nonce: 16 to 64 characters of the URL-safe base64 alphabet.
NONCE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
KEY_IN_PATH = re.compile(re.escape(DEV_KEYS_PREFIX) + r"([^\s?\"]+)")
MAX_BODY_BYTES = 64 * 1024
REQUEST_LOG_LENGTH = 10_000
GARBAGE = b"<html><body><h1>502 Bad Gateway</h1><p>The proxy could not reach the upstream.</p></body></html>"


class BadRequest(Exception):
    """A request the server answers with 400 and this message."""


@dataclass(frozen=True)
class _Validation:
    """What one validation request asks; `nonce` only in v2."""

    key: str
    installation_id: str
    seats_in_use: int
    nonce: str | None = None


@dataclass(frozen=True)
class _Reply:
    """An answer to a validation, before it is sent."""

    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)
    label: int | str | None = None

    @classmethod
    def json(cls, status: int, document: object, headers: dict[str, str] | None = None) -> _Reply:
        body = json.dumps(document, ensure_ascii=False).encode("utf-8")
        return cls(status, body, "application/json; charset=utf-8", headers or {}, status)


class LicenseServerState:
    """Keys, fault switches and the log of validations, shared by the server's threads."""

    def __init__(self, keys: dict[str, KeyRecord], signer: Signer, saved_to: Path | None = None) -> None:
        self.signer = signer
        self._keys = dict(keys)
        # Where the keys are written after every change, so a restart keeps them.
        self._saved_to = saved_to
        self._faults = Faults()
        self._validations: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def key(self, key: str) -> KeyRecord | None:
        """The record of `key`, if the server knows it."""
        with self._lock:
            return self._keys.get(key)

    def records(self) -> list[KeyRecord]:
        """Every key, in the order they were added."""
        with self._lock:
            return list(self._keys.values())

    def put_key(self, raw_key: str, fields: object) -> KeyRecord:
        """Change a key's fields, or add the key if it is new."""
        key = canonical_key(raw_key)
        now = datetime.now(UTC)
        with self._lock:
            existing = self._keys.get(key)
            record = new_key(key, fields, now) if existing is None else changed_key(existing, fields, now)
            self._keys[key] = record
            self._save()
        return record

    def remove_key(self, raw_key: str) -> bool:
        """Forget a key; False if it was unknown."""
        with self._lock:
            removed = self._keys.pop(canonical_key(raw_key), None) is not None
            self._save()
            return removed

    def _save(self) -> None:
        if self._saved_to is not None:
            save_keys(self._saved_to, self._keys.values())

    @property
    def faults(self) -> Faults:
        """The fault switches now."""
        with self._lock:
            return self._faults

    def set_faults(self, faults: Faults) -> None:
        """Replace every fault switch."""
        with self._lock:
            self._faults = faults

    def take_faults(self) -> Faults:
        """The faults for one validation, counting it against `times`."""
        with self._lock:
            faults = self._faults
            self._faults = faults.used_once()
            return faults

    def record_validation(self, entry: dict[str, Any]) -> None:
        """Keep what one validation asked and how it was answered."""
        with self._lock:
            self._validations.append(entry)
            del self._validations[:-REQUEST_LOG_LENGTH]

    def validations(self) -> list[dict[str, Any]]:
        """The validations received, oldest first."""
        with self._lock:
            return list(self._validations)

    def forget_validations(self) -> None:
        """Empty the log of validations."""
        with self._lock:
            self._validations.clear()


class LicenseServer(ThreadingHTTPServer):
    """A threaded HTTP server, so a slow answer never holds up the `/_dev` switches."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: LicenseServerState) -> None:
        super().__init__(address, LicenseRequestHandler)
        self.state = state


class LicenseRequestHandler(BaseHTTPRequestHandler):
    """Answers one HTTP request."""

    server: LicenseServer
    protocol_version = "HTTP/1.1"
    server_version = "AvtorDevLicenseServer/1"

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        # Paths under /_dev/keys/ carry a key: the log shows it masked, like every log of the manager.
        log.info("%s %s", self.address_string(), masked_paths(format % args))

    @property
    def state(self) -> LicenseServerState:
        return self.server.state

    def _route(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        routes: dict[tuple[str, str], Callable[[], None]] = {
            ("POST", VALIDATE_V1_PATH): lambda: self._validate(version=1),
            ("POST", VALIDATE_V2_PATH): lambda: self._validate(version=2),
            ("GET", "/_dev/faults"): lambda: self._send_json(200, self.state.faults.as_json()),
            ("POST", "/_dev/faults"): self._set_faults,
            ("DELETE", "/_dev/faults"): self._clear_faults,
            ("GET", "/_dev/keys"): lambda: self._send_json(200, [k.as_json() for k in self.state.records()]),
            ("GET", "/_dev/validations"): lambda: self._send_json(200, self.state.validations()),
            ("DELETE", "/_dev/validations"): self._forget_validations,
            ("GET", "/_dev/public-key"): lambda: self._send_json(
                200, {"public_key": self.state.signer.public_key}
            ),
        }
        try:
            handler = routes.get((method, path))
            if handler is not None:
                handler()
            elif path.startswith(DEV_KEYS_PREFIX) and method in {"GET", "PUT", "DELETE"}:
                self._key_switch(method, unquote(path[len(DEV_KEYS_PREFIX) :]))
            else:
                self._send_error(404, "not_found", f"There is no {method} {path} on this server.")
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its read timeout ran out during a slow answer): nothing to answer.
            self.close_connection = True

    # --- the contract -------------------------------------------------------------------------

    def _validate(self, version: int) -> None:
        entry: dict[str, Any] = {"received_at": format_instant(datetime.now(UTC)), "version": version}
        try:
            request = _validation_request(self._read_json(), version)
        except BadRequest as error:
            self.state.record_validation({**entry, "answer": 400})
            self._send_error(400, "bad_request", str(error))
            return
        faults = self.state.take_faults()
        entry.update(
            license_key=masked_key(request.key),
            installation_id=request.installation_id,
            seats_in_use=request.seats_in_use,
            faults=faults.as_json(),
        )
        if request.nonce is not None:
            entry["nonce"] = request.nonce
        if faults.delay_seconds:
            time.sleep(faults.delay_seconds)
        reply = self._answer_validation(request, faults)
        # Logged before it is sent, so whoever got the answer also finds it in the log.
        self.state.record_validation({**entry, "answer": reply.label})
        self._send(reply.status, reply.body, reply.content_type, reply.headers)

    def _answer_validation(self, request: _Validation, faults: Faults) -> _Reply:
        if faults.fail_with is not None:
            headers = {} if faults.retry_after is None else {"Retry-After": str(faults.retry_after)}
            error = {"error": "unavailable", "message": _failure_message(faults.fail_with)}
            return _Reply.json(faults.fail_with, error, headers)
        if faults.garbage:
            return _Reply(200, GARBAGE, "text/html", label="garbage")
        record = self.state.key(request.key)
        issued_at = str(format_instant(datetime.now(UTC)))
        if request.nonce is not None:
            return self._answer_v2(request, request.nonce, record, issued_at, faults)
        if record is None:
            return _Reply.json(
                404, {"error": "unknown_license", "message": "No license with this key exists."}
            )
        license = {**_license_object(record), "issued_at": issued_at}
        return _Reply.json(200, self._signed("license", license, faults))

    def _answer_v2(
        self, request: _Validation, nonce: str, record: KeyRecord | None, issued_at: str, faults: Faults
    ) -> _Reply:
        """v2: 200 `known` or 404 `unknown`, both signed, bound to the request's nonce and installation."""
        answer: dict[str, Any] = (
            {"outcome": "unknown", "message": "No license with this key exists."}
            if record is None
            else {"outcome": "known", "license": _license_object(record)}
        )
        answer.update(installation_id=request.installation_id, nonce=nonce, issued_at=issued_at)
        return _Reply.json(404 if record is None else 200, self._signed("answer", answer, faults))

    def _signed(self, name: str, signed: dict[str, Any], faults: Faults) -> dict[str, Any]:
        """`{name: signed, "signature": ...}`, the signature as the fault switches want it."""
        body: dict[str, Any] = {name: signed}
        if faults.signature == "wrong":
            # A genuine signature, but of other content: what a tampered answer looks like.
            body["signature"] = self.state.signer.sign({**signed, "tampered": True})
        elif faults.signature != "missing":
            body["signature"] = self.state.signer.sign(signed)
        return body

    # --- the switches -------------------------------------------------------------------------

    def _set_faults(self) -> None:
        try:
            faults = read_faults(self._read_json())
        except (BadRequest, FaultsError) as error:
            self._send_error(400, "bad_request", str(error))
            return
        self.state.set_faults(faults)
        log.warning("Faults switched: %s", faults.as_json() if faults.any else "none")
        self._send_json(200, faults.as_json())

    def _clear_faults(self) -> None:
        self.state.set_faults(Faults())
        self._send_json(200, Faults().as_json())

    def _forget_validations(self) -> None:
        self.state.forget_validations()
        self._send_json(200, [])

    def _key_switch(self, method: str, raw_key: str) -> None:
        try:
            if method == "PUT":
                self._send_json(200, self.state.put_key(raw_key, self._read_json()).as_json())
            elif method == "DELETE":
                if self.state.remove_key(raw_key):
                    self._send_json(200, {"removed": canonical_key(raw_key)})
                else:
                    self._send_error(404, "unknown_license", "No license with this key exists.")
            else:
                record = self.state.key(canonical_key(raw_key))
                if record is None:
                    self._send_error(404, "unknown_license", "No license with this key exists.")
                else:
                    self._send_json(200, record.as_json())
        except (BadRequest, KeysFileError) as error:
            self._send_error(400, "bad_request", str(error))

    # --- HTTP -----------------------------------------------------------------------------------

    def _read_json(self) -> object:
        length_header = self.headers.get("Content-Length")
        try:
            length = int(length_header or "0")
        except ValueError:
            raise BadRequest("Content-Length must be a number") from None
        if length > MAX_BODY_BYTES:
            raise BadRequest(f"the request body is larger than {MAX_BODY_BYTES} bytes")
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("the request body must be JSON") from None

    def _send_error(
        self, status: int, error: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        self._send_json(status, {"error": error, "message": message}, headers)

    def _send_json(self, status: int, document: object, headers: dict[str, str] | None = None) -> None:
        reply = _Reply.json(status, document, headers)
        self._send(reply.status, reply.body, reply.content_type, reply.headers)

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def _failure_message(status: int) -> str:
    try:
        return f"The license service is switched to fail: {HTTPStatus(status).phrase}."
    except ValueError:
        return f"The license service is switched to fail with {status}."


def masked_paths(text: str) -> str:
    """`text` with every key in a `/_dev/keys/{key}` path masked."""
    return KEY_IN_PATH.sub(lambda match: DEV_KEYS_PREFIX + masked_key(unquote(match.group(1))), text)


def _license_object(record: KeyRecord) -> dict[str, Any]:
    """The `license` object of an answer about `record` (v1 adds `issued_at` to it)."""
    return {
        "key": record.key,
        "status": record.status,
        "seats": record.seats,
        "expires_at": format_instant(record.expires_at),
        "customer": record.customer,
    }


def _validation_request(request: object, version: int) -> _Validation:
    """What a validation request of contract `version` asks, or BadRequest."""
    if not isinstance(request, dict):
        raise BadRequest("the request body must be a JSON object")
    try:
        key = canonical_key(request.get("license_key"))
    except KeysFileError as error:
        raise BadRequest(str(error)) from None
    if request.get("product") != "avtor":
        raise BadRequest('product must be "avtor"')
    installation_id = request.get("installation_id")
    if not isinstance(installation_id, str) or not installation_id:
        raise BadRequest("installation_id is required")
    try:
        uuid.UUID(installation_id)
    except ValueError:
        raise BadRequest("installation_id must be a UUID") from None
    seats_in_use = request.get("seats_in_use")
    if isinstance(seats_in_use, bool) or not isinstance(seats_in_use, int) or seats_in_use < 0:
        raise BadRequest("seats_in_use must be a whole number, 0 or more")
    if version == 1:
        return _Validation(key, installation_id, seats_in_use)
    nonce = request.get("nonce")
    if not isinstance(nonce, str) or not NONCE_PATTERN.match(nonce):
        raise BadRequest("nonce must be 16 to 64 characters of the URL-safe base64 alphabet")
    return _Validation(key, installation_id, seats_in_use, nonce)
