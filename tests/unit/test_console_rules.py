"""The rules behind the console: searching and removing users at once, throttling sign-ins, banners."""

from datetime import UTC, datetime, timedelta

import pytest

from domain.access import MAX_FAILURES, RecentFailures, administrator_name, check_password, throttled_for
from domain.events import EventKind
from domain.licenses import ServiceAnswer
from domain.ports import Verified
from domain.refusals import Refused
from domain.services.agreement import accept_agreement
from domain.services.ledger import SeatCounts
from domain.services.licenses import add_license
from domain.services.users import add_user, list_users, remove_users
from tests.fakes import FakeLicenseService, FakeStore
from web.views import banner_for, changes, describe_changes

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
GRACE = timedelta(days=14)
KEY = "AVTR-7Q2M-K9XD-4HFT-PL3C"


def ledger_with(seats: int, *users: str) -> FakeStore:
    store = FakeStore()
    accept_agreement("Ada Admin", store, NOW, GRACE)
    answer = ServiceAnswer(KEY, "active", seats, NOW + timedelta(days=200), NOW, "Example Corp")
    add_license(KEY, "ada", store, FakeLicenseService({KEY: Verified(answer)}), NOW, GRACE, timedelta(days=3))
    for offset, user in enumerate(users):
        add_user(user, "ada", store, NOW + timedelta(seconds=offset), GRACE)
    return store


def test_a_search_finds_part_of_a_name_whatever_its_case_and_counts_the_matches() -> None:
    store = ledger_with(5, "sitecore\\Bob", "sitecore\\bobby", "umbraco\\carol")
    page = list_users(store, limit=1, offset=1, contains=" BOB ")
    assert (page.total, [seat.username for seat in page.seats]) == (2, ["sitecore\\bobby"])
    assert list_users(store, contains="").total == 3


def test_several_users_are_removed_at_once_and_each_removal_is_in_the_audit_log() -> None:
    store = ledger_with(5, "ann", "bob", "cid")
    done = remove_users(["ANN", "cid", "nobody", "ann"], "ada (console)", store, NOW, GRACE)
    assert (done.removed, done.not_holding) == (["ann", "cid"], ["nobody"])
    assert (done.counts.licensed, done.counts.in_use) == (5, 1)
    removals = [event for event in store.ledger.events if event.kind is EventKind.USER_REMOVED]
    assert [(e.subject, e.actor, e.seats_used_before, e.seats_used_after) for e in removals] == [
        ("ann", "ada (console)", 3, 2),
        ("cid", "ada (console)", 2, 1),
    ]


def test_removing_nobody_is_refused() -> None:
    with pytest.raises(Refused, match="Select the users"):
        remove_users([], "ada", ledger_with(1), NOW, GRACE)


def test_sign_ins_wait_after_ten_wrong_passwords_for_a_name_or_from_an_address() -> None:
    oldest = NOW - timedelta(seconds=40)
    assert throttled_for(RecentFailures(MAX_FAILURES - 1, 0, oldest), NOW) is None
    assert throttled_for(RecentFailures(MAX_FAILURES, 0, oldest), NOW) == timedelta(seconds=20)
    assert throttled_for(RecentFailures(0, MAX_FAILURES, oldest), NOW) == timedelta(seconds=20)


def test_administrator_names_are_compared_case_folded_and_passwords_must_be_long() -> None:
    assert administrator_name("  Ada ") == "ada"
    with pytest.raises(Refused):
        administrator_name("bad\nname")
    with pytest.raises(Refused, match="at least 12"):
        check_password("short")


def test_the_banner_says_how_many_users_must_go_when_over_the_limit() -> None:
    banner = banner_for(SeatCounts(1, 3), licenses=1)
    assert banner is not None and banner.title == "Over the limit."
    assert "until 2 users are removed" in banner.text
    full = banner_for(SeatCounts(3, 3), licenses=1)
    assert full is not None and full.title == "No seat is free."
    assert banner_for(SeatCounts(3, 1), licenses=1) is None


def test_a_refresh_says_what_changed() -> None:
    found = changes({"seats": 3, "status": "active"}, {"seats": 4, "status": "active"})
    assert describe_changes(found) == "Changed: seats 3 → 4."
    assert describe_changes([]) == "Nothing changed."
