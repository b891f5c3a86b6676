"""What the administrator reads: pages of seat holders, the audit log, the seat report, the agreement."""

from datetime import UTC, datetime, timedelta

from domain.enrolment import EnrolmentRequest, Outcome
from domain.events import EventKind
from domain.licenses import ServiceAnswer
from domain.ports import Verified
from domain.services.agreement import accept_agreement, agreement_in_force
from domain.services.audit import audit_log, audit_overview, seat_report
from domain.services.enrolment import enrol_editors
from domain.services.licenses import add_license
from domain.services.users import add_user, list_users
from tests.fakes import FakeLicenseService, FakeStore

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
GRACE = timedelta(days=14)
KEY = "AVTR-7Q2M-K9XD-4HFT-PL3C"


def licensed_store(seats: int = 10) -> FakeStore:
    store = FakeStore()
    accept_agreement("Ada Admin", store, NOW, GRACE)
    answer = ServiceAnswer(KEY, "active", seats, NOW + timedelta(days=200), NOW, "Example Corp")
    add_license(KEY, "ada", store, FakeLicenseService({KEY: Verified(answer)}), NOW, GRACE, timedelta(days=3))
    return store


def test_the_agreement_is_in_force_only_once_accepted() -> None:
    store = FakeStore()
    assert agreement_in_force(store) is None
    accept_agreement("Ada Admin", store, NOW, GRACE)
    acceptance = agreement_in_force(store)
    assert acceptance is not None and acceptance.accepted_by == "Ada Admin"


def test_seat_holders_come_in_pages_oldest_seat_first_with_the_total() -> None:
    store = licensed_store()
    for minute in range(5):
        add_user(f"editor-{minute}", "ada", store, NOW + timedelta(minutes=minute), GRACE)
    page = list_users(store, limit=2, offset=2)
    assert [seat.username for seat in page.seats] == ["editor-2", "editor-3"]
    assert (page.total, page.offset) == (5, 2)
    assert len(list_users(store).seats) == 5


def test_the_audit_log_filters_by_kind_and_time_and_keeps_the_latest() -> None:
    store = licensed_store()
    for minute in range(3):
        add_user(f"editor-{minute}", "ada", store, NOW + timedelta(minutes=minute + 1), GRACE)
    kinds = [event.kind for event in audit_log(store)]
    assert kinds == [EventKind.AGREEMENT_ACCEPTED, EventKind.LICENSE_ADDED] + [EventKind.USER_ADDED] * 3
    added = audit_log(store, [EventKind.USER_ADDED], since=NOW + timedelta(minutes=2))
    assert [event.subject for event in added] == ["editor-1", "editor-2"]
    assert [event.subject for event in audit_log(store, limit=1)] == ["editor-2"]
    assert audit_log(store, until=NOW) == []


def test_refused_starts_are_counted_per_editor_and_never_crowd_out_the_administrators_changes() -> None:
    store = licensed_store(seats=1)
    add_user("sitecore\\Ann", "ada", store, NOW, GRACE)
    for number in range(130):
        editor = "sitecore\\Bob" if number % 13 else "sitecore\\Cid"
        request = EnrolmentRequest(editor.lower(), editor, request_id=f"start-{number}")
        [decision] = enrol_editors([request], store, NOW + timedelta(minutes=number), GRACE)
        assert decision.outcome is Outcome.NO_SEATS
    assert {event.kind for event in audit_log(store, limit=100)} == {EventKind.SEAT_REFUSED}

    overview = audit_overview(store, limit=100)
    assert [(event.kind, event.subject) for event in overview.events] == [
        (EventKind.AGREEMENT_ACCEPTED, "agreement 1.0"),
        (EventKind.LICENSE_ADDED, "…PL3C"),
        (EventKind.USER_ADDED, "sitecore\\ann"),
    ]
    counted = [(t.subject, t.outcome, t.count, t.first_at, t.last_at) for t in overview.refused_starts]
    assert counted == [
        ("sitecore\\bob", "no_seats", 120, NOW + timedelta(minutes=1), NOW + timedelta(minutes=129)),
        ("sitecore\\cid", "no_seats", 10, NOW, NOW + timedelta(minutes=117)),
    ]
    assert [tally.subject for tally in audit_overview(store, limit=1).refused_starts] == ["sitecore\\bob"]


def test_the_default_view_lists_the_latest_of_each_group_so_grants_do_not_crowd_out_changes() -> None:
    store = licensed_store(seats=50)
    requests = [EnrolmentRequest(f"editor-{n}", f"editor-{n}", request_id=f"r{n}") for n in range(30)]
    enrol_editors(requests, store, NOW + timedelta(minutes=1), GRACE)
    overview = audit_overview(store, limit=5)
    kinds = [event.kind for event in overview.events]
    assert kinds == [EventKind.AGREEMENT_ACCEPTED, EventKind.LICENSE_ADDED] + [EventKind.SEAT_GRANTED] * 5
    assert [event.subject for event in overview.events[2:]] == [f"editor-{n}" for n in range(25, 30)]


def test_the_seat_report_names_the_installation_every_holder_and_the_counts() -> None:
    store = licensed_store(seats=3)
    add_user("sitecore\\Bob", "ada", store, NOW, GRACE)
    report = seat_report(store, NOW, GRACE)
    assert report.installation_id == FakeStore.installation_id
    assert (report.counts.licensed, report.counts.in_use) == (3, 1)
    assert [(seat.display_name, seat.assigned_by) for seat in report.holders] == [("sitecore\\Bob", "ada")]
    assert [view.key for view in report.licenses] == [KEY]
