"""The metrics collector on the in-memory store, and the documents that name its metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis.backoff import NoBackoff
from redis.retry import Retry

from adapters.metrics import InstallationCollector, LedgerSource, check_result
from domain.alerts import AlertKind
from domain.events import AuditEvent, EventKind
from domain.licenses import License, ServiceAnswer
from domain.ports import Unverifiable, Verified
from domain.seat_policy import OverLimitPolicy
from domain.seats import Assignment, Seat
from domain.services.agreement import accept_agreement
from domain.services.alerts import evaluate_alerts
from domain.services.licenses import add_license
from domain.services.revalidation import RevalidationRules, refresh_license
from tests.fakes import FakeLicenseService, FakeStore

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2027, 3, 1, 12, tzinfo=UTC)
GRACE = timedelta(days=14)
DAY = timedelta(days=1)


def a_license(key: str, seats: int, expires_in: timedelta) -> License:
    return License(
        key=key,
        added_at=NOW - 30 * DAY,
        seats=seats,
        service_status="active",
        expires_at=NOW + expires_in,
        verified_at=NOW - DAY,
        latest_issued_at=NOW - DAY,
        last_checked_at=NOW - DAY,
        id=f"id-{key}",
    )


def a_check(detail: str, outcome: str | None = None) -> AuditEvent:
    return AuditEvent(EventKind.LICENSE_REFRESHED, NOW, "beat", "…0001", 5, 5, 2, 2, outcome, None, detail)


def scrape(store: FakeStore) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    # Nothing listens on port 9: the stream's figures are reported as unreadable, the rest stands.
    unreachable = redis.Redis(host="127.0.0.1", port=9, retry=Retry(NoBackoff(), 0))
    registry = CollectorRegistry(auto_describe=False)
    source = LedgerSource(store, lambda: NOW, GRACE, OverLimitPolicy.BLOCK_ALL)
    registry.register(InstallationCollector(source, unreachable))
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_seats_licenses_checks_and_open_alerts_are_read_from_the_store_at_scrape_time() -> None:
    store = FakeStore()
    store.ledger.licenses["AVTOR-KEY-0001"] = a_license("AVTOR-KEY-0001", 10, 6 * DAY)
    for number in range(9):
        name = f"user{number}"
        store.ledger.seats[name] = Seat(name, name, Assignment.MANUAL, NOW - DAY, "admin")
    evaluate_alerts(store, NOW, GRACE)
    with store.writing() as uow:
        uow.events.record(
            [
                a_check("The license …0001 is verified: 10 seats until 2027-03-07."),
                a_check("The license …0001 was refused by the license service: revoked."),
                a_check("The license …0001 could not be verified: timeout."),
                a_check("", outcome="verified"),
            ]
        )
        uow.commit()

    samples = scrape(store)

    assert samples[("avtor_seats_licensed", ())] == 10
    assert samples[("avtor_seats_allocated", ())] == 9
    assert samples[("avtor_seats_free", ())] == 1
    assert samples[("avtor_seats_over_limit", ())] == 0
    names = (("key", "…0001"), ("license", "id-AVTOR-KEY-0001"))
    assert samples[("avtor_license_expiry_timestamp_seconds", names)] == (NOW + 6 * DAY).timestamp()
    assert samples[("avtor_license_last_verified_timestamp_seconds", names)] == (NOW - DAY).timestamp()
    assert samples[("avtor_license_status", (*names, ("status", "active")))] == 1
    assert samples[("avtor_license_checks_total", (("result", "verified"),))] == 2
    assert samples[("avtor_license_checks_total", (("result", "rejected"),))] == 1
    assert samples[("avtor_license_checks_total", (("result", "could_not_verify"),))] == 1
    assert samples[("avtor_alerts_open", (("kind", AlertKind.LICENSE_EXPIRES.value),))] == 1
    assert samples[("avtor_alerts_open", (("kind", AlertKind.SEATS_RUNNING_OUT.value),))] == 1
    assert samples[("avtor_alerts_open", (("kind", AlertKind.OVER_LIMIT.value),))] == 0
    assert samples[("avtor_enrolment_stream_up", ())] == 0
    assert ("avtor_enrolment_waiting", ()) not in samples


def test_a_check_recorded_with_its_outcome_is_counted_by_it() -> None:
    assert check_result(a_check("anything", outcome="rejected")) == "rejected"
    assert check_result(a_check("The license …0001 is verified, but it is expired")) == "verified"


# --- the documents ---------------------------------------------------------------------------------

METRIC_NAMES = {
    "avtor_seats_licensed",
    "avtor_seats_allocated",
    "avtor_seats_free",
    "avtor_seats_over_limit",
    "avtor_license_expiry_timestamp_seconds",
    "avtor_license_last_verified_timestamp_seconds",
    "avtor_license_grace_end_timestamp_seconds",
    "avtor_license_seats",
    "avtor_license_seats_granted",
    "avtor_license_status",
    "avtor_license_checks_total",
    "avtor_alerts_open",
    "avtor_enrolment_stream_up",
    "avtor_enrolment_waiting",
    "avtor_enrolment_oldest_waiting_seconds",
    "avtor_enrolment_consumers_alive",
    "avtor_enrolment_dead_letters",
    "avtor_enrolment_decisions_total",
    "avtor_enrolment_decision_latency_seconds_bucket",
    "avtor_enrolment_decision_latency_seconds_sum",
    "avtor_enrolment_decision_latency_seconds_count",
}


def metric_names(expression: str) -> set[str]:
    return set(re.findall(r"\bavtor_[a-z_]+", expression))


def test_the_collector_makes_every_metric_the_documents_may_name() -> None:
    store = FakeStore()
    store.ledger.licenses["AVTOR-KEY-0001"] = a_license("AVTOR-KEY-0001", 10, 6 * DAY)
    made = {name for name, _ in scrape(store)}
    from_redis = {name for name in METRIC_NAMES if name.startswith("avtor_enrolment_")}
    assert made == (METRIC_NAMES - from_redis) | {"avtor_enrolment_stream_up"}


def test_the_alert_rules_name_only_metrics_that_exist() -> None:
    rules = yaml.safe_load((ROOT / "docs" / "monitoring" / "avtor-rules.yml").read_text(encoding="utf-8"))
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert len(alerts) >= 8
    for rule in alerts:
        assert {"alert", "expr", "labels", "annotations"} <= set(rule), rule
        assert metric_names(rule["expr"]) <= METRIC_NAMES, rule["alert"]
        assert metric_names(rule["expr"]), rule["alert"]


def test_the_grafana_dashboard_is_json_over_metrics_that_exist() -> None:
    dashboard = json.loads(
        (ROOT / "docs" / "monitoring" / "grafana-dashboard.json").read_text(encoding="utf-8")
    )
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(expressions) >= 8
    named = set().union(*(metric_names(expression) for expression in expressions))
    assert named <= METRIC_NAMES, named - METRIC_NAMES
    assert {"avtor_seats_allocated", "avtor_enrolment_decisions_total", "avtor_alerts_open"} <= named


def test_the_alert_rules_are_valid_rules_files() -> None:
    rules = ROOT / "docs" / "monitoring" / "avtor-rules.yml"
    document = yaml.safe_load(rules.read_text(encoding="utf-8"))
    for group in document["groups"]:
        assert group["name"] and group["rules"]
        for rule in group["rules"]:
            assert rule["alert"] and rule["expr"], rule
            assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, rule
    # Where the machine has promtool (Debian's prometheus package), Prometheus's own check too.
    if shutil.which("promtool") is not None:
        checked = subprocess.run(
            ["promtool", "check", "rules", str(rules)], capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_license_checks_are_counted_by_the_result_the_check_recorded() -> None:
    key = "AVTR-7Q2M-K9XD-4HFT-PL3C"
    answer = ServiceAnswer(key, "active", 10, NOW + 200 * DAY, NOW, "Example Corp")
    store, service = FakeStore(), FakeLicenseService({key: Verified(answer)})
    accept_agreement("admin", store, NOW, GRACE)
    add_license(key, "admin", store, service, NOW, GRACE, 3 * DAY)
    rules = RevalidationRules(revalidate_every=3 * DAY, lease=timedelta(minutes=5), grace_period=GRACE)
    refresh_license(key, "ada", store, service, NOW + timedelta(hours=1), rules)
    service.results[key] = Unverifiable("the license service did not answer")
    refresh_license(key, "ada", store, service, NOW + timedelta(hours=2), rules)

    assert [event.outcome for event in store.ledger.events if event.kind is EventKind.LICENSE_REFRESHED] == [
        "verified",
        "could_not_verify",
    ]
    samples = scrape(store)
    assert samples[("avtor_license_checks_total", (("result", "verified"),))] == 1
    assert samples[("avtor_license_checks_total", (("result", "could_not_verify"),))] == 1
    assert samples[("avtor_license_checks_total", (("result", "rejected"),))] == 0
