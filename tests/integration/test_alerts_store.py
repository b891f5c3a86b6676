"""Open alerts in the real SQL store: remembered across processes, raised once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from adapters.sql import SqlStore
from domain.alerts import AlertKind, NoticeKind
from domain.licenses import ServiceAnswer
from domain.ports import Verified
from domain.services.agreement import accept_agreement
from domain.services.alerts import evaluate_alerts, open_alerts
from domain.services.licenses import add_license
from tests.fakes import FakeLicenseService

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
GRACE = timedelta(days=14)


def test_an_alert_is_remembered_in_the_store_and_resolved_once(store: SqlStore) -> None:
    accept_agreement("admin", store, NOW, GRACE)
    answer = ServiceAnswer("AVTR-0001", "active", 5, NOW + timedelta(days=6), NOW, "Example Corp")
    service = FakeLicenseService({"AVTR-0001": Verified(answer)})
    add_license("AVTR-0001", "admin", store, service, NOW, GRACE, timedelta(days=3))

    first = evaluate_alerts(store, NOW, GRACE)
    assert [(n.kind, n.alert.kind, n.alert.threshold) for n in first] == [
        (NoticeKind.RAISED, AlertKind.LICENSE_EXPIRES, 7)
    ]
    assert evaluate_alerts(store, NOW + timedelta(minutes=1), GRACE) == []
    [kept] = open_alerts(store)
    assert kept.alert == first[0].alert and kept.raised_at == NOW

    with store.writing() as uow:
        license = uow.licenses.list()[0]
        license.expires_at = NOW + timedelta(days=365)
        uow.licenses.save(license)
        uow.commit()
    resolved = evaluate_alerts(store, NOW + timedelta(minutes=2), GRACE)
    assert [(n.kind, n.raised_at) for n in resolved] == [(NoticeKind.RESOLVED, NOW)]
    assert open_alerts(store) == []
