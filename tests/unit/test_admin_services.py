from datetime import UTC, datetime, timedelta

import pytest

from domain.agreement import AGREEMENT_VERSION, AgreementNotAccepted
from domain.events import EventKind
from domain.licenses import LicenseStatus, ServiceAnswer
from domain.ports import Rejected, Unverifiable, Verified
from domain.refusals import Refused
from domain.services.agreement import accept_agreement
from domain.services.licenses import add_license, remove_license
from domain.services.status import describe_ledger
from domain.services.users import add_user, remove_user
from tests.fakes import FakeLicenseService, FakeStore

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
GRACE = timedelta(days=14)
EVERY = timedelta(days=3)
KEY = "AVTR-7Q2M-K9XD-4HFT-PL3C"


def service(
    status: str = "active", seats: int = 25, expires_at: datetime | None = NOW + timedelta(days=200)
) -> FakeLicenseService:
    return FakeLicenseService(
        {KEY: Verified(ServiceAnswer(KEY, status, seats, expires_at, NOW, "Example Corp"))}
    )


def accepted_store() -> FakeStore:
    store = FakeStore()
    accept_agreement("Ada Admin", store, NOW, GRACE)
    return store


def test_nothing_can_be_added_before_the_agreement_is_accepted() -> None:
    store = FakeStore()
    with pytest.raises(AgreementNotAccepted, match="has not been accepted"):
        add_license(KEY, "admin", store, service(), NOW, GRACE, EVERY)
    with pytest.raises(AgreementNotAccepted):
        add_user("bob", "admin", store, NOW, GRACE)
    assert store.writes == 0


def test_acceptance_records_who_and_when_once() -> None:
    store = FakeStore()
    first = accept_agreement("Ada Admin", store, NOW, GRACE)
    again = accept_agreement("Bob Admin", store, NOW + timedelta(days=1), GRACE)
    assert (first.version, first.accepted_by, first.accepted_at) == (AGREEMENT_VERSION, "Ada Admin", NOW)
    assert again == first
    assert [event.kind for event in store.ledger.events] == [EventKind.AGREEMENT_ACCEPTED]


def test_acceptance_needs_a_name() -> None:
    with pytest.raises(Refused, match="Say who accepts"):
        accept_agreement("  ", FakeStore(), NOW, GRACE)


def test_adding_a_license_validates_it_and_shows_seats_and_expiry() -> None:
    store, fake = accepted_store(), service()
    view = add_license(" avtr-7q2m-k9xd-4hft-pl3c ", "admin", store, fake, NOW, GRACE, EVERY)
    assert (view.key, view.seats_granted, view.status) == (KEY, 25, LicenseStatus.ACTIVE)
    assert view.expires_at == NOW + timedelta(days=200)
    assert view.next_check_at == NOW + EVERY
    assert fake.calls == [(KEY, FakeStore.installation_id, 0)]
    event = store.ledger.events[-1]
    assert (event.kind, event.subject, event.seats_total_before, event.seats_total_after) == (
        EventKind.LICENSE_ADDED,
        "…PL3C",
        0,
        25,
    )


@pytest.mark.parametrize(
    ("fake", "reason"),
    [
        (
            FakeLicenseService({KEY: Rejected("No license with this key exists.")}),
            "No license with this key exists",
        ),
        (FakeLicenseService({KEY: Unverifiable("connection refused")}), "try again"),
        (service(status="revoked"), "revoked"),
        (service(status="suspended"), "suspended"),
        (service(status="expired"), "expired"),
        (service(expires_at=NOW - timedelta(seconds=1)), "expired"),
    ],
)
def test_a_key_that_grants_nothing_is_refused_and_nothing_is_stored(
    fake: FakeLicenseService, reason: str
) -> None:
    store = accepted_store()
    writes = store.writes
    with pytest.raises(Refused, match=reason):
        add_license(KEY, "admin", store, fake, NOW, GRACE, EVERY)
    assert store.ledger.licenses == {}
    assert store.writes == writes


def test_a_key_already_added_is_refused_without_asking_the_service() -> None:
    store, fake = accepted_store(), service()
    add_license(KEY, "admin", store, fake, NOW, GRACE, EVERY)
    with pytest.raises(Refused, match="already been added"):
        add_license(KEY.lower(), "admin", store, fake, NOW, GRACE, EVERY)
    assert len(fake.calls) == 1


def test_removing_a_license_drops_its_seats_at_once() -> None:
    store = accepted_store()
    add_license(KEY, "admin", store, service(seats=2), NOW, GRACE, EVERY)
    add_user("ann", "admin", store, NOW, GRACE)
    remove_license(KEY, "admin", store, NOW, GRACE)
    status = describe_ledger(store, NOW, GRACE)
    assert (status.counts.licensed, status.counts.in_use, status.counts.over_limit_by) == (0, 1, 1)
    assert store.ledger.events[-1].seats_total_after == 0


def test_removing_an_unknown_license_is_refused() -> None:
    with pytest.raises(Refused, match="has been added"):
        remove_license(KEY, "admin", accepted_store(), NOW, GRACE)


def test_an_administrator_adds_and_removes_users() -> None:
    store = accepted_store()
    add_license(KEY, "admin", store, service(seats=1), NOW, GRACE, EVERY)
    counts = add_user(" Sitecore\\Bob ", "admin", store, NOW, GRACE)
    assert (counts.licensed, counts.in_use, counts.free) == (1, 1, 0)
    seat = store.ledger.seats["sitecore\\bob"]
    assert (seat.display_name, seat.assignment.value, seat.assigned_by) == (
        "Sitecore\\Bob",
        "manual",
        "admin",
    )
    with pytest.raises(Refused, match="already holds a seat"):
        add_user("SITECORE\\BOB", "admin", store, NOW, GRACE)
    with pytest.raises(Refused, match="No seat is free"):
        add_user("ann", "admin", store, NOW, GRACE)
    assert remove_user("sitecore\\bob", "admin", store, NOW, GRACE).in_use == 0
    with pytest.raises(Refused, match="holds no seat"):
        remove_user("sitecore\\bob", "admin", store, NOW, GRACE)
    kinds = [event.kind for event in store.ledger.events]
    assert kinds[-2:] == [EventKind.USER_ADDED, EventKind.USER_REMOVED]


@pytest.mark.parametrize("name", ["", "x" * 257, "bob\nsmith"])
def test_a_bad_user_name_is_refused_with_the_reason(name: str) -> None:
    store = accepted_store()
    with pytest.raises(Refused, match="cannot be used"):
        add_user(name, "admin", store, NOW, GRACE)
    assert store.ledger.seats == {}


def test_over_the_limit_adding_a_user_says_how_many_must_go() -> None:
    store = accepted_store()
    add_license(KEY, "admin", store, service(seats=5), NOW, GRACE, EVERY)
    for name in ("ann", "bob", "cid", "dee", "eve"):
        add_user(name, "admin", store, NOW, GRACE)
    remove_license(KEY, "admin", store, NOW, GRACE)
    small = "AVTR-SMALL-0003"
    answer = ServiceAnswer(small, "active", 3, NOW + timedelta(days=200), NOW, "Example Corp")
    add_license(small, "admin", store, FakeLicenseService({small: Verified(answer)}), NOW, GRACE, EVERY)
    with pytest.raises(Refused) as refused:
        add_user("fay", "admin", store, NOW, GRACE)
    assert str(refused.value) == (
        "No seat is free for fay: 5 users hold seats but the licenses grant only 3. "
        "Remove 3 users first, or add a license; nothing was changed."
    )


def test_an_empty_name_is_explained_to_the_administrator_without_host_words() -> None:
    with pytest.raises(Refused) as refused:
        add_user("  ", "admin", accepted_store(), NOW, GRACE)
    message = str(refused.value)
    assert message == (
        "That user name cannot be used: the user name is empty; "
        "a CMS user name is needed, e.g. sitecore\\bob."
    )
    assert "send" not in message and "::" not in message
