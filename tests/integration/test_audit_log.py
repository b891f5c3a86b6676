"""The audit log's counts of refused starts on real SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adapters.sql import SqlStore
from domain.enrolment import EnrolmentRequest, Outcome
from domain.events import EventKind
from domain.licenses import ServiceAnswer
from domain.ports import Verified
from domain.services.agreement import accept_agreement
from domain.services.audit import audit_overview
from domain.services.enrolment import enrol_editors
from domain.services.licenses import add_license
from domain.services.users import add_user
from tests.fakes import FakeLicenseService

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
GRACE = timedelta(days=14)
KEY = "AVTR-AUDT-ACTV-0001"


def test_refused_starts_are_counted_per_editor_and_outcome_latest_first(store: SqlStore) -> None:
    accept_agreement("Ada Admin", store, NOW, GRACE)
    answer = ServiceAnswer(KEY, "active", 1, None, NOW, "Example Corp")
    service = FakeLicenseService({KEY: Verified(answer)})
    add_license(KEY, "ada", store, service, NOW, GRACE, timedelta(days=3))
    add_user("sitecore\\ann", "ada", store, NOW, GRACE)
    for minute, editor in enumerate(["bob", "cid", "bob", "bob", "cid", "dan"]):
        request = EnrolmentRequest(editor, editor, request_id=f"start-{minute}")
        [decision] = enrol_editors([request], store, NOW + timedelta(minutes=minute), GRACE)
        assert decision.outcome is Outcome.NO_SEATS

    with store.reading() as uow:
        tallies = uow.events.tally(EventKind.SEAT_REFUSED)
        assert uow.events.tally(EventKind.SEAT_REFUSED, limit=1)[0].subject == "dan"
        assert uow.events.tally(EventKind.LICENSE_REMOVED) == []
    assert [(t.subject, t.outcome, t.count, t.first_at, t.last_at) for t in tallies] == [
        ("dan", "no_seats", 1, NOW + timedelta(minutes=5), NOW + timedelta(minutes=5)),
        ("cid", "no_seats", 2, NOW + timedelta(minutes=1), NOW + timedelta(minutes=4)),
        ("bob", "no_seats", 3, NOW, NOW + timedelta(minutes=3)),
    ]
    assert all(tally.first_at.tzinfo is not None for tally in tallies)
    overview = audit_overview(store, limit=100)
    assert [event.kind for event in overview.events] == [
        EventKind.AGREEMENT_ACCEPTED,
        EventKind.LICENSE_ADDED,
        EventKind.USER_ADDED,
    ]
    assert overview.refused_starts == tallies
