"""The development license server itself: its command line, shipped files, both API versions and switches."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from adapters.license_service import HttpLicenseService
from domain.moments import parse_instant, utc_now
from domain.ports import Rejected, Unverifiable, Verified
from tests.support.license_server import ROOT, LicenseServerProcess, key_entry, license_server
from tests.support.servers import free_port, wait_for_port

INSTALLATION = "6f1c2a9e-3f53-4c0b-9c5e-2f0b7f1d8a11"
SHIPPED_KEY_PAIR = ROOT / "licenseserver" / "data" / "development-key-pair.json"


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`python -m licenseserver` with nothing but a port: the shipped demo keys and key pair."""
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "licenseserver", "--port", str(port)],
            cwd=ROOT,
            stdout=output,
            stderr=output,
        )
    try:
        wait_for_port(port)
        # It listens a moment before it prints what to export.
        deadline = time.monotonic() + 10
        while "WARNING" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_demo_keys_and_the_development_key_pair_ship_with_the_server(
    demo_server: tuple[str, str],
) -> None:
    url, printed = demo_server
    public_key = json.loads(SHIPPED_KEY_PAIR.read_text())["public_key"]
    assert f"export AVTOR_LICENSE_SERVER_PUBLIC_KEY={public_key}" in printed
    assert "DEVELOPMENT ONLY" in printed and "DEVELOPMENT ONLY" in SHIPPED_KEY_PAIR.read_text()
    service = HttpLicenseService(url, public_key, connect_timeout=1.0, read_timeout=2.0)
    answers = {}
    for key in (
        "AVTR-DEMO-ACTV-SEAT-0005",
        "AVTR-DEMO-ACTV-SEAT-0010",
        "AVTR-DEMO-PERP-SEAT-0003",
        "AVTR-DEMO-EXPD-SEAT-0025",
        "AVTR-DEMO-RVKD-SEAT-0015",
        "AVTR-DEMO-SUSP-SEAT-0020",
    ):
        result = service.validate(key, INSTALLATION, 0)
        assert isinstance(result, Verified), result
        answers[key[-4:]] = (result.answer.status, result.answer.seats)
    assert answers == {
        "0005": ("active", 5),
        "0010": ("active", 10),
        "0003": ("active", 3),
        "0025": ("expired", 25),
        "0015": ("revoked", 15),
        "0020": ("suspended", 20),
    }


def test_v1_answers_are_still_signed_over_the_contracts_canonical_json(demo_server: tuple[str, str]) -> None:
    url, _ = demo_server
    body = {
        "license_key": "avtr-demo-actv-seat-0005",
        "installation_id": INSTALLATION,
        "product": "avtor",
        "seats_in_use": 3,
    }
    answer = requests.post(f"{url}/v1/licenses/validate", json=body, timeout=5).json()
    license = answer["license"]
    signed = json.dumps(license, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    public_key = base64.b64decode(json.loads(SHIPPED_KEY_PAIR.read_text())["public_key"])
    Ed25519PublicKey.from_public_bytes(public_key).verify(base64.b64decode(answer["signature"]), signed)
    assert license["key"] == "AVTR-DEMO-ACTV-SEAT-0005"


def canonical(document: dict[str, object]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize(
    ("key", "status", "outcome"),
    [("avtr-demo-actv-seat-0005", 200, "known"), ("AVTR-NOPE-0000", 404, "unknown")],
)
def test_v2_answers_known_and_unknown_are_signed_and_echo_the_nonce_and_installation(
    demo_server: tuple[str, str], key: str, status: int, outcome: str
) -> None:
    url, _ = demo_server
    body = {
        "license_key": key,
        "installation_id": INSTALLATION,
        "product": "avtor",
        "seats_in_use": 3,
        "nonce": "kq3Zt0c1bXyU2m8W0a7d6Q",
    }
    response = requests.post(f"{url}/v2/licenses/validate", json=body, timeout=5)
    assert response.status_code == status
    document = response.json()
    answer = document["answer"]
    public_key = base64.b64decode(json.loads(SHIPPED_KEY_PAIR.read_text())["public_key"])
    Ed25519PublicKey.from_public_bytes(public_key).verify(
        base64.b64decode(document["signature"]), canonical(answer)
    )
    assert (answer["outcome"], answer["nonce"], answer["installation_id"]) == (
        outcome,
        "kq3Zt0c1bXyU2m8W0a7d6Q",
        INSTALLATION,
    )
    assert abs(parse_instant(answer["issued_at"]) - utc_now()).total_seconds() < 60
    if outcome == "known":
        assert answer["license"]["key"] == "AVTR-DEMO-ACTV-SEAT-0005"
        assert "issued_at" not in answer["license"]
    else:
        assert answer["message"] == "No license with this key exists."


@pytest.mark.parametrize("nonce", [None, "short", "x" * 65, "not/url+safe=base64chars"])
def test_a_v2_request_without_a_usable_nonce_is_answered_400(
    demo_server: tuple[str, str], nonce: object
) -> None:
    url, _ = demo_server
    body = {"license_key": "AVTR-DEMO-ACTV-SEAT-0005", "installation_id": INSTALLATION, "product": "avtor"}
    response = requests.post(
        f"{url}/v2/licenses/validate", json={**body, "seats_in_use": 0, "nonce": nonce}, timeout=5
    )
    assert response.status_code == 400
    assert "nonce must be 16 to 64 characters" in response.json()["message"]


@pytest.mark.parametrize(
    ("keys_file", "says"),
    [
        ("not json", "is not valid JSON"),
        ('{"keys": [{"key": "AVTR-1"}]}', "AVTR-1 needs at least a number of seats"),
        ('{"keys": [{"key": "AVTR-1", "seats": -1}]}', "seats must be a whole number, 0 or more"),
        ('{"keys": [{"key": "AVTR-1", "seats": 1, "status": "gone"}]}', "status must be one of"),
        ('{"keys": [{"key": "AVTR-1", "seats": 1}, {"key": "avtr-1", "seats": 2}]}', "AVTR-1 appears twice"),
    ],
)
def test_a_broken_keys_file_stops_the_server_with_the_reason(
    tmp_path: Path, keys_file: str, says: str
) -> None:
    path = tmp_path / "keys.json"
    path.write_text(keys_file)
    finished = subprocess.run(
        [sys.executable, "-m", "licenseserver", "--keys", str(path), "--port", str(free_port())],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert finished.returncode == 2
    assert "The development license server cannot start" in finished.stderr
    assert says in finished.stderr


def test_a_generated_key_pair_signs_instead_of_the_development_pair(tmp_path: Path) -> None:
    pair = tmp_path / "pair.json"
    generated = subprocess.run(
        [sys.executable, "-m", "licenseserver", "--generate-key-pair", str(pair)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    public_key = json.loads(pair.read_text())["public_key"]
    assert public_key in generated.stdout
    with license_server([key_entry("AVTR-OWN-0001", 2)], key_pair=pair) as server:
        assert server.public_key == public_key
        service = HttpLicenseService(server.url, public_key, connect_timeout=1.0, read_timeout=2.0)
        assert isinstance(service.validate("AVTR-OWN-0001", INSTALLATION, 0), Verified)
        assert "DEVELOPMENT ONLY" not in server.log()


@pytest.fixture(scope="module")
def server() -> Iterator[LicenseServerProcess]:
    with license_server([key_entry("AVTR-SWCH-0001", 1)]) as running:
        yield running


def test_the_v2_answers_of_the_development_server_verify_with_the_client(
    server: LicenseServerProcess,
) -> None:
    server.heal()
    service = HttpLicenseService(server.url, server.public_key, connect_timeout=1.0, read_timeout=2.0)
    known = service.validate("AVTR-SWCH-0001", INSTALLATION, 0)
    assert isinstance(known, Verified) and known.answer.seats == 1
    unknown = service.validate("AVTR-SWCH-9999", INSTALLATION, 0)
    assert isinstance(unknown, Rejected) and unknown.issued_at is not None


@pytest.mark.parametrize("fault", ["wrong", "missing"])
def test_the_signature_faults_apply_to_v2_answers_known_and_unknown(
    server: LicenseServerProcess, fault: str
) -> None:
    service = HttpLicenseService(server.url, server.public_key, connect_timeout=1.0, read_timeout=2.0)
    server.fail(signature=fault)
    try:
        for key in ("AVTR-SWCH-0001", "AVTR-SWCH-9999"):
            assert isinstance(service.validate(key, INSTALLATION, 0), Unverifiable)
    finally:
        server.heal()


def test_the_servers_log_and_its_validations_show_keys_masked(server: LicenseServerProcess) -> None:
    server.heal()
    service = HttpLicenseService(server.url, server.public_key, connect_timeout=1.0, read_timeout=2.0)
    server.put_key("AVTR-SWCH-MASK-4242", seats=2)
    service.validate("AVTR-SWCH-MASK-4242", INSTALLATION, 0)
    requests.get(f"{server.url}/_dev/keys/AVTR-SWCH-MASK-4242", timeout=5)
    server.remove_key("AVTR-SWCH-MASK-4242")
    time.sleep(0.2)  # the server logs after it answers
    assert "…4242" in server.log()
    assert "SWCH-MASK" not in server.log()
    assert "SWCH-MASK" not in json.dumps(server.validations())


@pytest.mark.parametrize(
    ("switches", "says"),
    [
        ({"fail_with": 200}, "fail_with must be 429 or a 5xx status"),
        ({"delay_seconds": -1}, "delay_seconds must be a number from 0 to 600"),
        ({"signature": "odd"}, 'signature must be "wrong", "missing" or null'),
        ({"times": 0}, "times must be a whole number, 1 or more"),
        ({"explode": True}, "Unknown fault switches explode"),
    ],
)
def test_a_wrong_switch_is_refused_with_the_reason_and_changes_nothing(
    server: LicenseServerProcess, switches: dict[str, object], says: str
) -> None:
    server.heal()
    response = requests.post(f"{server.url}/_dev/faults", json=switches, timeout=5)
    assert response.status_code == 400
    assert says in response.json()["message"]
    assert requests.get(f"{server.url}/_dev/faults", timeout=5).json()["fail_with"] is None


def test_a_wrong_key_change_is_refused_with_the_reason(server: LicenseServerProcess) -> None:
    response = requests.put(f"{server.url}/_dev/keys/AVTR-SWCH-0001", json={"seats": "many"}, timeout=5)
    assert response.status_code == 400
    assert "seats must be a whole number" in response.json()["message"]
    assert requests.get(f"{server.url}/_dev/keys/AVTR-SWCH-0001", timeout=5).json()["seats"] == 1


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"installation_id": INSTALLATION, "product": "avtor", "seats_in_use": 0}, "license_key is required"),
        (
            {
                "license_key": "AVTR-SWCH-0001",
                "installation_id": INSTALLATION,
                "product": "other",
                "seats_in_use": 0,
            },
            "product",
        ),
        (
            {"license_key": "AVTR-SWCH-0001", "installation_id": "x", "product": "avtor", "seats_in_use": 0},
            "UUID",
        ),
        (
            {
                "license_key": "AVTR-SWCH-0001",
                "installation_id": INSTALLATION,
                "product": "avtor",
                "seats_in_use": -2,
            },
            "seats_in_use",
        ),
    ],
)
def test_a_malformed_validation_request_is_answered_400_bad_request(
    server: LicenseServerProcess, body: dict[str, object], says: str
) -> None:
    response = requests.post(f"{server.url}/v1/licenses/validate", json=body, timeout=5)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert says in response.json()["message"]


def test_with_a_state_file_the_server_keeps_changed_keys_and_their_expiry_across_a_restart(
    tmp_path: Path,
) -> None:
    state = tmp_path / "license-server-keys.json"

    def start() -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "licenseserver", "--port", str(port), "--state", str(state), "--quiet"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(port)
        return process, f"http://127.0.0.1:{port}"

    first, url = start()
    try:
        demo_key = requests.get(f"{url}/_dev/keys", timeout=5).json()[0]
        changed = requests.put(f"{url}/_dev/keys/{demo_key['key']}", json={"seats": 42}, timeout=5)
        changed.raise_for_status()
        requests.put(f"{url}/_dev/keys/AVTR-KEPT-0001", json={"seats": 3}, timeout=5).raise_for_status()
    finally:
        first.terminate()
        first.wait(timeout=10)
    time.sleep(1.1)  # demo keys expire a number of days after they are read: a restart must not move them

    second, url = start()
    try:
        keys = {key["key"]: key for key in requests.get(f"{url}/_dev/keys", timeout=5).json()}
    finally:
        second.terminate()
        second.wait(timeout=10)
    assert keys[demo_key["key"]]["seats"] == 42
    assert keys[demo_key["key"]]["expires_at"] == demo_key["expires_at"]
    assert keys["AVTR-KEPT-0001"]["seats"] == 3
