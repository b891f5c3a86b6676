"""A real webhook receiver and a real SMTP server (STARTTLS, AUTH) on loopback, for the alerts' tests."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SmtpServerProtocol
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.servers import free_port

# How far a webhook's timestamp may be from the receiver's clock.
TOLERANCE_SECONDS = 300


@dataclass(frozen=True)
class Delivery:
    """One POST the receiver took, and whether its signature was valid."""

    body: dict[str, Any]
    headers: dict[str, str]
    signature_valid: bool


@dataclass
class WebhookReceiver:
    """An HTTP server on loopback that checks X-Avtor-Signature as docs/alerts.md says a receiver should."""

    secret: str
    deliveries: list[Delivery] = field(default_factory=list)
    # Status codes to answer before answering 204, one per request.
    failures: list[int] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/avtor-alerts"

    def verify(self, timestamp: str, body: bytes, signature: str) -> bool:
        """docs/alerts.md's check: HMAC-SHA256 over `<timestamp>.<body>`, compared in constant time."""
        expected = (
            "sha256="
            + hmac.new(self.secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        )
        fresh = abs(time.time() - int(timestamp)) <= TOLERANCE_SECONDS
        return fresh and hmac.compare_digest(expected, signature)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(self.deliveries)} webhook deliveries within {timeout} s, not {count}"
                )
            time.sleep(0.05)
        return list(self.deliveries)


@contextmanager
def webhook_receiver(secret: str) -> Iterator[WebhookReceiver]:
    """A running webhook receiver on a loopback port."""
    receiver = WebhookReceiver(secret)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            valid = receiver.verify(
                self.headers.get("X-Avtor-Timestamp", "0"), body, self.headers.get("X-Avtor-Signature", "")
            )
            if receiver.failures:
                self.send_response(receiver.failures.pop(0))
                self.end_headers()
                return
            receiver.deliveries.append(Delivery(json.loads(body), dict(self.headers.items()), valid))
            self.send_response(204 if valid else 401)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, signed by its own key: (certificate, key) files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Avtor test SMTP server")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return certificate_path, key_path


@dataclass
class SmtpServer:
    """A real SMTP server: STARTTLS required, AUTH required (over TLS), messages kept in memory."""

    port: int
    user: str
    password: str
    certificate: Path
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str], bool]] = field(default_factory=list)

    def client_tls(self) -> ssl.SSLContext:
        """A client TLS context that trusts this server's certificate."""
        return ssl.create_default_context(cafile=str(self.certificate))

    def wait_for(self, count: int, timeout: float = 30.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.messages)} e-mails within {timeout} s, not {count}")
            time.sleep(0.05)
        return list(self.messages)


@contextmanager
def smtp_server(directory: Path, user: str, password: str) -> Iterator[SmtpServer]:
    """A running SMTP server on a loopback port with a self-signed certificate made here."""
    certificate, key = self_signed_certificate(directory)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(str(certificate), str(key))
    server = SmtpServer(free_port(), user, password, certificate)

    def authenticate(
        smtp: SmtpServerProtocol, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            user.encode(),
            password.encode(),
        )
        return AuthResult(success=ok, handled=False)

    class Handler:
        async def handle_DATA(self, smtp: SmtpServerProtocol, session: Session, envelope: Envelope) -> str:
            content = (
                envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
            )
            server.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos), bool(session.ssl)))
            message = message_from_bytes(content, policy=policy.default)
            assert isinstance(message, EmailMessage)
            server.messages.append(message)
            return "250 Message accepted for delivery"

    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=server.port,
        tls_context=tls,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield server
    finally:
        controller.stop()
