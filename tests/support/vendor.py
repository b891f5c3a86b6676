"""A license service of the test's own on loopback: it answers each request as the test crafts it.

Unlike the development license server, it can send anything: unsigned grants, answers
signed with another key, replays of captured answers, answers dated 2099. Its key pair
is generated for the test, as the vendor's would be.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

Reply = tuple[int, object]


def signed(private_key: Ed25519PrivateKey, answer: dict[str, Any]) -> dict[str, Any]:
    """`{"answer": answer, "signature": ...}` as the contract signs it."""
    canonical = json.dumps(answer, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return {"answer": answer, "signature": base64.b64encode(private_key.sign(canonical)).decode("ascii")}


def instant(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class VendorDouble:
    """The vendor's service as a test plays it: `reply` makes the answer to each request."""

    def __init__(self, private_key: Ed25519PrivateKey | None = None) -> None:
        self.private_key = private_key or Ed25519PrivateKey.generate()
        self.requests: list[dict[str, Any]] = []
        self.answers: list[Reply] = []
        self.seats = 25
        self.reply: Callable[[dict[str, Any]], Reply] = self.known
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.double = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The base URL to give the client."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def public_key(self) -> str:
        """The public key, base64 of its 32 raw bytes."""
        raw = self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return base64.b64encode(raw).decode("ascii")

    def answer(self, request: dict[str, Any], **changes: Any) -> dict[str, Any]:
        """The genuine `known` answer to `request`, with `changes` (before signing)."""
        answer: dict[str, Any] = {
            "outcome": "known",
            "license": {
                "key": request["license_key"],
                "status": "active",
                "seats": self.seats,
                "expires_at": "2031-06-30T23:59:59Z",
                "customer": "Example Corp",
            },
            "installation_id": request["installation_id"],
            "nonce": request["nonce"],
            "issued_at": instant(datetime.now(UTC)),
        }
        answer.update(changes)
        return answer

    def known(self, request: dict[str, Any]) -> Reply:
        """The genuine, signed answer: the key is known and active."""
        return 200, signed(self.private_key, self.answer(request))

    def unknown(self, request: dict[str, Any]) -> Reply:
        """The genuine, signed answer: the key is unknown."""
        answer = {
            "outcome": "unknown",
            "message": "No license with this key exists.",
            "installation_id": request["installation_id"],
            "nonce": request["nonce"],
            "issued_at": instant(datetime.now(UTC)),
        }
        return 404, signed(self.private_key, answer)

    def start(self) -> VendorDouble:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        double: VendorDouble = self.server.double  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        double.requests.append({"path": self.path, **request})
        status, document = double.reply(request)
        double.answers.append((status, document))
        body = json.dumps(document).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def vendor_double(private_key: Ed25519PrivateKey | None = None) -> Iterator[VendorDouble]:
    """A running VendorDouble, stopped afterwards."""
    double = VendorDouble(private_key).start()
    try:
        yield double
    finally:
        double.stop()
