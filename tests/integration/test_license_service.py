"""The license service client (contract v2) over real HTTP against the development license server."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from adapters.license_service import HttpLicenseService
from domain.ports import Rejected, Unverifiable, Verified
from tests.support.license_server import LicenseServerProcess, key_entry, license_server
from tests.support.servers import free_port

INSTALLATION = "6f1c2a9e-3f53-4c0b-9c5e-2f0b7f1d8a11"
ACTIVE = "AVTR-TEST-ACTV-0025"
EXPIRES = "2031-06-30T23:59:59Z"
KEYS = [
    key_entry(ACTIVE, 25, expires_at=EXPIRES),
    key_entry("AVTR-TEST-EXPD-0007", 7, "expired", expires_in_days=-3),
    key_entry("AVTR-TEST-SUSP-0008", 8, "suspended"),
    key_entry("AVTR-TEST-RVKD-0009", 9, "revoked"),
    key_entry("AVTR-TEST-PERP-0003", 3, expires_at=None),
]


@pytest.fixture(scope="module")
def server() -> Iterator[LicenseServerProcess]:
    with license_server(KEYS) as running:
        yield running


@pytest.fixture(autouse=True)
def healed(server: LicenseServerProcess) -> None:
    server.heal()
    server.forget_validations()


class Pauses(list[float]):
    """Records each pause of the client between attempts, and waits it for real."""

    def __call__(self, seconds: float) -> None:
        import time

        self.append(seconds)
        time.sleep(seconds)


def client(
    server: LicenseServerProcess,
    public_key: str = "server",
    read_timeout: float = 2.0,
    attempts: int = 3,
    pauses: Pauses | None = None,
    url: str | None = None,
) -> HttpLicenseService:
    return HttpLicenseService(
        url or server.url,
        server.public_key if public_key == "server" else public_key,
        connect_timeout=1.0,
        read_timeout=read_timeout,
        attempts=attempts,
        first_pause=0.05,
        longest_pause=2.0,
        sleep=pauses if pauses is not None else Pauses(),
    )


def test_an_active_key_is_verified_with_its_seats_expiry_and_customer(server: LicenseServerProcess) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    result = client(server).validate(ACTIVE, INSTALLATION, 12)
    assert isinstance(result, Verified)
    answer = result.answer
    assert (answer.key, answer.status, answer.seats, answer.customer) == (
        ACTIVE,
        "active",
        25,
        "Example Corp",
    )
    assert answer.expires_at == datetime(2031, 6, 30, 23, 59, 59, tzinfo=UTC)
    assert answer.issued_at >= before
    [request] = server.validations(ACTIVE)
    assert (request["installation_id"], request["seats_in_use"]) == (INSTALLATION, 12)


def test_a_key_without_expiry_is_verified_with_no_expiry(server: LicenseServerProcess) -> None:
    result = client(server).validate("AVTR-TEST-PERP-0003", INSTALLATION, 0)
    assert isinstance(result, Verified)
    assert (result.answer.seats, result.answer.expires_at) == (3, None)


@pytest.mark.parametrize(
    ("key", "status"),
    [
        ("AVTR-TEST-EXPD-0007", "expired"),
        ("AVTR-TEST-SUSP-0008", "suspended"),
        ("AVTR-TEST-RVKD-0009", "revoked"),
    ],
)
def test_a_key_that_is_not_active_is_verified_with_its_status(
    server: LicenseServerProcess, key: str, status: str
) -> None:
    result = client(server).validate(key, INSTALLATION, 0)
    assert isinstance(result, Verified)
    assert result.answer.status == status


def test_an_unknown_key_is_rejected_with_the_services_message(server: LicenseServerProcess) -> None:
    result = client(server).validate("AVTR-NOPE-0000", INSTALLATION, 0)
    assert isinstance(result, Rejected)
    assert (result.message, result.malformed_request) == ("No license with this key exists.", False)
    assert result.issued_at is not None
    assert len(server.validations("AVTR-NOPE-0000")) == 1


def test_a_malformed_request_is_rejected_once_as_malformed(server: LicenseServerProcess) -> None:
    result = client(server).validate("AVTR_1!", INSTALLATION, 0)
    assert isinstance(result, Rejected)
    assert result.malformed_request
    assert "malformed" in result.message
    assert len(server.validations()) == 1


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_failing_service_is_tried_again_then_could_not_verify(
    server: LicenseServerProcess, status: int
) -> None:
    pauses = Pauses()
    server.fail(fail_with=status)
    result = client(server, pauses=pauses).validate(ACTIVE, INSTALLATION, 0)
    assert isinstance(result, Unverifiable)
    assert f"answered {status}" in result.reason
    assert len(server.validations(ACTIVE)) == 3
    assert len(pauses) == 2


def test_a_transient_failure_is_tried_again_until_the_service_answers(server: LicenseServerProcess) -> None:
    server.fail(fail_with=503, times=2)
    result = client(server).validate(ACTIVE, INSTALLATION, 0)
    assert isinstance(result, Verified)
    assert [entry["answer"] for entry in server.validations(ACTIVE)] == [503, 503, 200]


def test_retry_after_is_honoured(server: LicenseServerProcess) -> None:
    server.fail(fail_with=429, retry_after=1, times=1)
    pauses = Pauses()
    result = client(server, pauses=pauses).validate(ACTIVE, INSTALLATION, 0)
    assert isinstance(result, Verified)
    assert len(pauses) == 1
    assert pauses[0] >= 1.0


def test_a_retry_after_longer_than_the_client_waits_ends_the_attempts_and_is_passed_on(
    server: LicenseServerProcess,
) -> None:
    server.fail(fail_with=503, retry_after=120)
    result = client(server).validate(ACTIVE, INSTALLATION, 0)
    assert isinstance(result, Unverifiable)
    assert result.retry_after == timedelta(seconds=120)
    assert len(server.validations(ACTIVE)) == 1


def test_a_slow_service_is_a_timeout_and_could_not_verify(server: LicenseServerProcess) -> None:
    server.fail(delay_seconds=2)
    result = client(server, read_timeout=0.3, attempts=2).validate(ACTIVE, INSTALLATION, 0)
    assert isinstance(result, Unverifiable)
    assert "did not answer within 0.3 s" in result.reason


def test_a_body_that_is_not_json_is_transient(server: LicenseServerProcess) -> None:
    server.fail(garbage=True, times=1)
    assert isinstance(client(server).validate(ACTIVE, INSTALLATION, 0), Verified)
    server.fail(garbage=True)
    result = client(server).validate(ACTIVE, INSTALLATION, 0)
    assert isinstance(result, Unverifiable)
    assert "not JSON" in result.reason


def test_a_service_that_cannot_be_reached_could_not_verify(server: LicenseServerProcess) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    result = client(server, url=nobody).validate(ACTIVE, INSTALLATION, 0)
    assert isinstance(result, Unverifiable)
    assert "cannot be reached (Connection refused)" in result.reason


@pytest.mark.parametrize(("fault", "says"), [("wrong", "does not verify"), ("missing", "no signature")])
def test_a_bad_or_missing_signature_is_never_trusted_and_is_logged_as_an_error(
    server: LicenseServerProcess, caplog: pytest.LogCaptureFixture, fault: str, says: str
) -> None:
    server.fail(signature=fault)
    with caplog.at_level(logging.DEBUG):
        result = client(server).validate(ACTIVE, INSTALLATION, 0)
    assert isinstance(result, Unverifiable)
    assert says in result.reason
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert errors
    assert "…0025" in errors[0].getMessage()
    assert ACTIVE not in caplog.text


def test_an_answer_signed_with_another_key_is_never_trusted(server: LicenseServerProcess) -> None:
    other = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    result = client(server, public_key=base64.b64encode(other).decode()).validate(ACTIVE, INSTALLATION, 0)
    assert isinstance(result, Unverifiable)
    assert "does not verify" in result.reason


@pytest.mark.parametrize("fault", ["wrong", "missing"])
def test_a_rejection_with_a_bad_or_missing_signature_is_never_trusted(
    server: LicenseServerProcess, fault: str
) -> None:
    server.fail(signature=fault)
    result = client(server).validate("AVTR-NOPE-0000", INSTALLATION, 0)
    assert isinstance(result, Unverifiable)
    assert "not trusted" in result.reason


def test_each_attempt_sends_a_nonce_of_its_own(server: LicenseServerProcess) -> None:
    server.fail(fail_with=503, times=2)
    assert isinstance(client(server).validate("AVTR-TEST-PERP-0003", INSTALLATION, 0), Verified)
    nonces = [entry["nonce"] for entry in server.validations("AVTR-TEST-PERP-0003")]
    assert len(nonces) == 3 and len(set(nonces)) == 3


def test_seats_changed_on_the_service_are_seen_on_the_next_validation(server: LicenseServerProcess) -> None:
    service = client(server)
    server.put_key("AVTR-TEST-MORE-0001", seats=5)
    first = service.validate("AVTR-TEST-MORE-0001", INSTALLATION, 0)
    server.put_key("AVTR-TEST-MORE-0001", seats=15, status="suspended")
    second = service.validate("AVTR-TEST-MORE-0001", INSTALLATION, 0)
    assert isinstance(first, Verified) and isinstance(second, Verified)
    assert (first.answer.seats, second.answer.seats, second.answer.status) == (5, 15, "suspended")
    assert second.answer.issued_at >= first.answer.issued_at
    server.remove_key("AVTR-TEST-MORE-0001")
    assert isinstance(service.validate("AVTR-TEST-MORE-0001", INSTALLATION, 0), Rejected)


def test_full_keys_never_reach_the_logs(
    server: LicenseServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        for fault in ({"fail_with": 503}, {"garbage": True}, {"signature": "wrong"}, {"delay_seconds": 1}):
            server.fail(**fault)
            client(server, read_timeout=0.3, attempts=2).validate(ACTIVE, INSTALLATION, 0)
    assert "…0025" in caplog.text
    assert ACTIVE not in caplog.text


def test_a_url_that_is_not_the_service_cannot_verify_and_never_rejects_the_key(
    server: LicenseServerProcess,
) -> None:
    # A wrong AVTOR_LICENSE_SERVER_URL answers 404 without the contract's body: the key
    # is not unknown to the vendor, the manager is asking the wrong place.
    result = client(server, url=server.url + "/not-the-service", attempts=1).validate(ACTIVE, INSTALLATION, 1)
    assert isinstance(result, Unverifiable), result
    assert result.reason.startswith("the license service answered 404 Not Found")
    assert "check AVTOR_LICENSE_SERVER_URL" in result.reason
