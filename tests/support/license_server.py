"""The development license server as a real subprocess on loopback, and its switches."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from domain.licenses import masked_key
from tests.support.servers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = (2.0, 10.0)


class LicenseServerProcess:
    """`python -m licenseserver` on a free loopback port, with its keys in a file of its own."""

    def __init__(self, keys: list[dict[str, Any]], key_pair: Path | None = None) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="avtor-license-server-"))
        self.keys_path = self.directory / "keys.json"
        self.keys_path.write_text(json.dumps({"keys": keys}), encoding="utf-8")
        self.key_pair = key_pair
        self.port = free_port()
        self.log_path = self.directory / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.session = requests.Session()

    @property
    def url(self) -> str:
        """The base URL to configure as AVTOR_LICENSE_SERVER_URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LicenseServerProcess:
        """Start the server and wait until it listens."""
        arguments = [sys.executable, "-m", "licenseserver", "--keys", str(self.keys_path)]
        arguments += ["--host", "127.0.0.1", "--port", str(self.port)]
        if self.key_pair is not None:
            arguments += ["--key-pair", str(self.key_pair)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(arguments, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the license server exited with {self.process.returncode}:\n{self.log()}")
            try:
                wait_for_port(self.port, timeout=0.2)
                return self
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the license server did not start:\n{self.log()}") from None

    def stop(self) -> None:
        """Stop the server (it can be started again on the same port)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def cleanup(self) -> None:
        """Stop the server and remove its files."""
        self.stop()
        self.session.close()
        for path in self.directory.iterdir():
            path.unlink()
        self.directory.rmdir()

    def log(self) -> str:
        """What the server printed."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # --- switches -------------------------------------------------------------------------------

    @property
    def public_key(self) -> str:
        """The server's public key, for AVTOR_LICENSE_SERVER_PUBLIC_KEY."""
        return str(self._call("GET", "/_dev/public-key")["public_key"])

    def fail(self, **switches: Any) -> dict[str, Any]:
        """Turn fault switches on (see docs/license-server.md); replaces the ones set before."""
        return dict(self._call("POST", "/_dev/faults", switches))

    def heal(self) -> None:
        """Turn every fault switch off."""
        self._call("DELETE", "/_dev/faults")

    def put_key(self, key: str, **fields: Any) -> dict[str, Any]:
        """Change a key's seats, status, expiry or customer while the server runs (or add the key)."""
        return dict(self._call("PUT", f"/_dev/keys/{key}", fields))

    def remove_key(self, key: str) -> None:
        """Make the server forget a key: it answers 404 for it from now on."""
        self._call("DELETE", f"/_dev/keys/{key}")

    def validations(self, key: str | None = None) -> list[dict[str, Any]]:
        """The validation requests the server received, oldest first; only `key`'s if given.

        The server keeps keys masked: `key` is told apart from the others by its last four characters.
        """
        received: list[dict[str, Any]] = self._call("GET", "/_dev/validations")
        return [entry for entry in received if key is None or entry.get("license_key") == masked_key(key)]

    def forget_validations(self) -> None:
        """Empty the server's log of validation requests."""
        self._call("DELETE", "/_dev/validations")

    def _call(self, method: str, path: str, body: object = None) -> Any:
        response = self.session.request(method, self.url + path, json=body, timeout=TIMEOUT)
        if response.status_code >= 400:
            raise AssertionError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()


@contextlib.contextmanager
def license_server(
    keys: list[dict[str, Any]], key_pair: Path | None = None
) -> Iterator[LicenseServerProcess]:
    """A running development license server with `keys`, stopped afterwards."""
    server = LicenseServerProcess(keys, key_pair).start()
    try:
        yield server
    finally:
        server.cleanup()


def key_entry(key: str, seats: int, status: str = "active", **fields: Any) -> dict[str, Any]:
    """One key of a keys file; `expires_at` (RFC 3339 or None) or `expires_in_days` among `fields`."""
    if "expires_at" not in fields:
        fields.setdefault("expires_in_days", 365)
    return {"key": key, "seats": seats, "status": status, "customer": "Example Corp", **fields}
