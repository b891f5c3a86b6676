"""Only the vendor is trusted: crafted answers from a license service of the test's own, over real HTTP.

Each answer that fails a check of the contract (signature, nonce, installation,
issued_at) is "could not verify": nothing the license grants changes, the check
is named in the license's last error, and the client logs it as an error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.license_service import HttpLicenseService
from adapters.sql import SqlStore, create_store_engine
from domain.licenses import LicenseStatus
from domain.moments import parse_instant, utc_now
from domain.ports import Rejected, Unverifiable, Verified
from domain.refusals import Refused
from domain.services.agreement import accept_agreement
from domain.services.licenses import LicenseView, add_license
from domain.services.revalidation import CheckOutcome, RevalidationRules, refresh_license
from domain.services.status import describe_ledger
from tests.support.stores import migrated_engine
from tests.support.vendor import Reply, VendorDouble, instant, signed, vendor_double

KEY = "AVTR-TRST-ACTV-0025"
GRACE, EVERY = timedelta(days=14), timedelta(days=3)
RULES = RevalidationRules(revalidate_every=EVERY, lease=timedelta(minutes=1), grace_period=GRACE)
INSTALLATION = "6f1c2a9e-3f53-4c0b-9c5e-2f0b7f1d8a11"


@pytest.fixture
def vendor() -> Iterator[VendorDouble]:
    with vendor_double() as double:
        yield double


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    url = f"sqlite:///{tmp_path / 'avtor.sqlite3'}"
    migrated_engine(url).dispose()
    store = SqlStore(create_store_engine(url))
    accept_agreement("Ada Admin", store, utc_now(), GRACE)
    yield store
    store.engine.dispose()


def client(vendor: VendorDouble, public_key: str | None = None) -> HttpLicenseService:
    return HttpLicenseService(
        vendor.url,
        public_key or vendor.public_key,
        connect_timeout=1.0,
        read_timeout=2.0,
        attempts=3,
        first_pause=0.01,
        longest_pause=0.2,
    )


def added(store: SqlStore, vendor: VendorDouble) -> LicenseView:
    """The key added with the vendor's genuine answer."""
    return add_license(KEY, "ada", store, client(vendor), utc_now(), GRACE, EVERY)


def view(store: SqlStore) -> LicenseView:
    [license] = describe_ledger(store, utc_now(), GRACE).licenses
    return license


def refresh(store: SqlStore, vendor: VendorDouble) -> CheckOutcome:
    return refresh_license(KEY, "ada", store, client(vendor), utc_now(), RULES).outcome


def assert_nothing_changed(before: LicenseView, after: LicenseView) -> None:
    assert (after.status, after.seats_granted, after.verified_at, after.grace_ends_at) == (
        before.status,
        before.seats_granted,
        before.verified_at,
        before.grace_ends_at,
    )


# --- genuine answers ----------------------------------------------------------------------------


def test_a_genuine_answer_grants_its_seats_and_grace_runs_from_its_issued_at(
    store: SqlStore, vendor: VendorDouble
) -> None:
    issued = datetime.now(UTC) - timedelta(minutes=5)
    vendor.reply = lambda request: (
        200,
        signed(vendor.private_key, vendor.answer(request, issued_at=instant(issued))),
    )
    license = added(store, vendor)
    assert (license.status, license.seats_granted) == (LicenseStatus.ACTIVE, 25)
    assert license.verified_at == issued
    assert license.grace_ends_at == issued + GRACE
    [request] = vendor.requests
    assert request["path"] == "/v2/licenses/validate"
    assert 16 <= len(request["nonce"]) <= 64


def test_every_request_and_every_retry_carries_a_new_nonce(vendor: VendorDouble) -> None:
    replies: list[Reply] = [(503, {"error": "unavailable"}), (429, {"error": "slow down"})]
    vendor.reply = lambda request: replies.pop(0) if replies else vendor.known(request)
    service = client(vendor)
    assert isinstance(service.validate(KEY, INSTALLATION, 0), Verified)
    assert isinstance(service.validate(KEY, INSTALLATION, 0), Verified)
    nonces = [request["nonce"] for request in vendor.requests]
    assert len(nonces) == 4
    assert len(set(nonces)) == 4


def test_a_signed_unknown_takes_the_seats_at_once(store: SqlStore, vendor: VendorDouble) -> None:
    added(store, vendor)
    vendor.reply = vendor.unknown
    assert refresh(store, vendor) is CheckOutcome.REJECTED
    license = view(store)
    assert (license.status, license.seats_granted) == (LicenseStatus.UNVERIFIED, 0)
    assert license.last_error == "The license service refused the key: No license with this key exists."


def test_adding_a_key_the_vendor_signs_as_unknown_is_refused_with_its_message(
    store: SqlStore, vendor: VendorDouble
) -> None:
    vendor.reply = vendor.unknown
    with pytest.raises(Refused, match=r"No license with this key exists\. The key was not added"):
        added(store, vendor)


# --- answers that are not trusted ---------------------------------------------------------------


def test_an_unsigned_grant_is_refused_and_nothing_is_added(
    store: SqlStore, vendor: VendorDouble, caplog: pytest.LogCaptureFixture
) -> None:
    vendor.seats = 100_000
    vendor.reply = lambda request: (
        200,
        {
            "answer": vendor.answer(
                request,
                license={
                    "key": KEY,
                    "status": "active",
                    "seats": 100_000,
                    "expires_at": None,
                },
            )
        },
    )
    with caplog.at_level(logging.ERROR), pytest.raises(Refused, match="carries no signature"):
        added(store, vendor)
    assert describe_ledger(store, utc_now(), GRACE).licenses == []
    assert "…0025" in caplog.text and KEY not in caplog.text


def test_an_answer_signed_with_another_key_is_refused_and_names_the_public_key_setting(
    store: SqlStore, vendor: VendorDouble
) -> None:
    before = added(store, vendor)
    other = Ed25519PrivateKey.generate()
    vendor.seats = 500
    vendor.reply = lambda request: (200, signed(other, vendor.answer(request)))
    assert refresh(store, vendor) is CheckOutcome.COULD_NOT_VERIFY
    after = view(store)
    assert_nothing_changed(before, after)
    assert "the answer's signature does not verify with AVTOR_LICENSE_SERVER_PUBLIC_KEY" in (
        after.last_error or ""
    )


def test_a_replayed_answer_is_refused_and_does_not_move_the_verification_or_the_grace(
    store: SqlStore, vendor: VendorDouble, caplog: pytest.LogCaptureFixture
) -> None:
    before = added(store, vendor)
    [(_, captured)] = vendor.answers
    vendor.reply = lambda request: (200, captured)
    with caplog.at_level(logging.ERROR):
        assert refresh(store, vendor) is CheckOutcome.COULD_NOT_VERIFY
        assert refresh(store, vendor) is CheckOutcome.COULD_NOT_VERIFY
    after = view(store)
    assert_nothing_changed(before, after)
    assert after.failed_checks == 2
    assert "nonce is not the one this request sent" in (after.last_error or "")
    assert "nonce is not the one this request sent" in caplog.text


def test_an_answer_with_another_nonce_is_refused(store: SqlStore, vendor: VendorDouble) -> None:
    before = added(store, vendor)
    vendor.reply = lambda request: (
        200,
        signed(vendor.private_key, vendor.answer(request, nonce="A" * 22)),
    )
    assert refresh(store, vendor) is CheckOutcome.COULD_NOT_VERIFY
    after = view(store)
    assert_nothing_changed(before, after)
    assert "nonce" in (after.last_error or "")


def test_an_answer_for_another_installation_is_refused(store: SqlStore, vendor: VendorDouble) -> None:
    before = added(store, vendor)
    elsewhere = "00000000-0000-4000-8000-00000000beef"
    vendor.reply = lambda request: (
        200,
        signed(vendor.private_key, vendor.answer(request, installation_id=elsewhere)),
    )
    assert refresh(store, vendor) is CheckOutcome.COULD_NOT_VERIFY
    after = view(store)
    assert_nothing_changed(before, after)
    assert f"the answer is for installation '{elsewhere}', not for this installation" in (
        after.last_error or ""
    )


def test_an_unsigned_404_changes_nothing_and_its_text_is_not_shown(
    store: SqlStore, vendor: VendorDouble
) -> None:
    before = added(store, vendor)
    vendor.reply = lambda request: (404, {"error": "unknown_license", "message": "Call 555-0100 to renew."})
    assert refresh(store, vendor) is CheckOutcome.COULD_NOT_VERIFY
    after = view(store)
    assert_nothing_changed(before, after)
    assert "an unsigned rejection is never trusted and changes nothing" in (after.last_error or "")
    assert "555-0100" not in (after.last_error or "")


def test_an_answer_dated_2099_is_refused_and_later_genuine_answers_still_count(
    store: SqlStore, vendor: VendorDouble
) -> None:
    before = added(store, vendor)
    vendor.reply = lambda request: (
        200,
        signed(vendor.private_key, vendor.answer(request, issued_at="2099-01-01T00:00:00Z")),
    )
    assert refresh(store, vendor) is CheckOutcome.COULD_NOT_VERIFY
    refused = view(store)
    assert_nothing_changed(before, refused)
    assert "issued at 2099-01-01T00:00:00Z, more than 10 minutes after this machine's clock" in (
        refused.last_error or ""
    )
    vendor.seats = 30
    vendor.reply = vendor.known
    assert refresh(store, vendor) is CheckOutcome.VERIFIED
    later = view(store)
    assert (later.seats_granted, later.last_error) == (30, None)
    assert later.verified_at is not None and later.verified_at.year < 2099


def test_an_answer_issued_eleven_minutes_ago_is_refused(store: SqlStore, vendor: VendorDouble) -> None:
    before = added(store, vendor)
    old = instant(datetime.now(UTC) - timedelta(minutes=11))
    vendor.reply = lambda request: (200, signed(vendor.private_key, vendor.answer(request, issued_at=old)))
    assert refresh(store, vendor) is CheckOutcome.COULD_NOT_VERIFY
    after = view(store)
    assert_nothing_changed(before, after)
    assert "more than 10 minutes before this machine's clock" in (after.last_error or "")
    assert "check that this machine's clock is right" in (after.last_error or "")


def test_an_answer_issued_before_the_last_accepted_one_is_refused(
    store: SqlStore, vendor: VendorDouble
) -> None:
    before = added(store, vendor)
    assert before.verified_at is not None
    earlier = instant(before.verified_at - timedelta(seconds=30))
    vendor.reply = lambda request: (
        200,
        signed(vendor.private_key, vendor.answer(request, issued_at=earlier)),
    )
    assert refresh(store, vendor) is CheckOutcome.COULD_NOT_VERIFY
    after = view(store)
    assert_nothing_changed(before, after)
    assert "before the answer already accepted for this key" in (after.last_error or "")


def test_a_signed_unknown_issued_before_the_last_accepted_answer_takes_nothing(
    store: SqlStore, vendor: VendorDouble
) -> None:
    before = added(store, vendor)
    assert before.verified_at is not None
    earlier = instant(before.verified_at - timedelta(seconds=30))

    def stale_unknown(request: dict[str, Any]) -> Reply:
        status, document = vendor.unknown(request)
        assert isinstance(document, dict)
        return status, signed(vendor.private_key, {**document["answer"], "issued_at": earlier})

    vendor.reply = stale_unknown
    assert refresh(store, vendor) is CheckOutcome.COULD_NOT_VERIFY
    assert_nothing_changed(before, view(store))


# --- the client on its own ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "says"),
    [
        ((200, {"license": {"key": KEY, "status": "active", "seats": 9}}), "no signed answer object"),
        ((200, {"answer": {"outcome": "known"}, "signature": "bm90IGEgc2lnbmF0dXJl"}), "does not verify"),
        ((404, {"error": "unknown_license"}), "answered 404 Not Found without a signed answer"),
    ],
)
def test_the_client_never_trusts_what_is_not_signed_by_the_vendor(
    vendor: VendorDouble, reply: Reply, says: str
) -> None:
    vendor.reply = lambda request: reply
    result = client(vendor).validate(KEY, INSTALLATION, 0)
    assert isinstance(result, Unverifiable)
    assert says in result.reason
    assert len(vendor.requests) == 1  # a refused answer is not asked again


def test_a_signed_unknown_is_a_rejection_with_when_it_was_issued(vendor: VendorDouble) -> None:
    vendor.reply = vendor.unknown
    result = client(vendor).validate(KEY, INSTALLATION, 0)
    assert isinstance(result, Rejected)
    assert result.message == "No license with this key exists."
    [(_, document)] = vendor.answers
    assert isinstance(document, dict)
    assert result.issued_at == parse_instant(document["answer"]["issued_at"])


def test_the_request_says_what_the_contract_asks(vendor: VendorDouble) -> None:
    client(vendor).validate(KEY, INSTALLATION, 7)
    [request] = vendor.requests
    assert {
        name: request[name] for name in ("license_key", "installation_id", "product", "seats_in_use")
    } == {
        "license_key": KEY,
        "installation_id": INSTALLATION,
        "product": "avtor",
        "seats_in_use": 7,
    }
    assert json.dumps(request).count(request["nonce"]) == 1
