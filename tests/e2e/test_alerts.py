"""Alerts with real `celery beat` and worker processes ticking every second.

A license that expires in under seven days raises exactly one 7-day alert, signed on a
real webhook receiver and e-mailed through a real SMTP server (STARTTLS, AUTH); a
second beat repeats nothing; a refresh that extends the license sends "resolved", which a
failing receiver gets on the second try.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from adapters.license_service import HttpLicenseService
from adapters.sql import SqlStore
from domain.moments import format_instant, utc_now
from domain.services.agreement import accept_agreement
from domain.services.licenses import add_license
from domain.services.revalidation import RevalidationRules, refresh_license
from tests.support.cli import AVTORLM, Avtorlm
from tests.support.license_server import LicenseServerProcess, key_entry, license_server
from tests.support.notices import SmtpServer, WebhookReceiver, smtp_server, webhook_receiver
from tests.support.servers import PostgresServer, RedisServer
from tests.support.stores import migrated_engine
from tests.support.workers import ROOT, CeleryProcess, avtor_environment

KEY = "AVTR-ALRT-EXPR-0007"
GRACE = timedelta(days=14)
WEBHOOK_SECRET = "whsec-e2e-0123456789abcdef"
SMTP_PASSWORD = "smtp-e2e-pass-0123"


@pytest.fixture(scope="module")
def server() -> Iterator[LicenseServerProcess]:
    expires_at = format_instant(utc_now() + timedelta(days=6, hours=12))
    with license_server([key_entry(KEY, 5, expires_at=expires_at)]) as running:
        yield running


@pytest.fixture(scope="module")
def store(postgres: PostgresServer, server: LicenseServerProcess) -> Iterator[SqlStore]:
    engine = migrated_engine(postgres.create_database("alerts_e2e"))
    store = SqlStore(engine)
    accept_agreement("Ada Admin", store, utc_now(), GRACE)
    add_license(KEY, "ada", store, service_of(server), utc_now(), GRACE, timedelta(days=3))
    yield store
    engine.dispose()


def service_of(server: LicenseServerProcess) -> HttpLicenseService:
    return HttpLicenseService(server.url, server.public_key, connect_timeout=1.0, read_timeout=3.0)


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver(WEBHOOK_SECRET) as running:
        yield running


@pytest.fixture(scope="module")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path_factory.mktemp("smtp"), "avtor-alerts", SMTP_PASSWORD) as running:
        yield running


@pytest.fixture(scope="module")
def env(
    store: SqlStore, server: LicenseServerProcess, redis_service: RedisServer, smtp: SmtpServer
) -> dict[str, str]:
    redis_service.flush()
    env = avtor_environment(
        redis_url=redis_service.url,
        database_url=store.engine.url.render_as_string(hide_password=False),
        license_server_url=server.url,
        license_server_public_key=server.public_key,
        revalidate_every="3d",
        alert_tick="1s",
        notice_attempts="3",
    )
    # The workers trust the SMTP server's certificate, made by the test, as they would a company CA's.
    env["SSL_CERT_FILE"] = str(smtp.certificate)
    return env


def notify(env: dict[str, str], secret: str, *arguments: str) -> str:
    done = subprocess.run(
        [str(AVTORLM), "notify", *arguments],
        env=env,
        cwd=ROOT,
        input=secret + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_an_expiring_license_alerts_once_on_both_channels_and_its_renewal_resolves_it(
    env: dict[str, str],
    store: SqlStore,
    server: LicenseServerProcess,
    receiver: WebhookReceiver,
    smtp: SmtpServer,
    tmp_path: Path,
) -> None:
    cli = Avtorlm(env)
    notify(env, WEBHOOK_SECRET, "add-webhook", "ops-hook", receiver.url, "--secret-stdin")
    notify(
        env,
        SMTP_PASSWORD,
        "add-email",
        "it-ops",
        "it-ops@example.com",
        "--host",
        "127.0.0.1",
        "--port",
        str(smtp.port),
        "--from",
        "avtor@example.com",
        "--user",
        "avtor-alerts",
        "--password-stdin",
    )
    listed = cli.ok("notify", "list").text
    assert "ops-hook" in listed and "it-ops" in listed
    assert WEBHOOK_SECRET not in listed and SMTP_PASSWORD not in listed

    processes = [CeleryProcess.worker(env, "alerts", queues="avtor.admin", concurrency=2).start()]
    try:
        processes.append(CeleryProcess.beat(env, tmp_path).start(wait_for="beat: Starting..."))
        [delivery] = receiver.wait_for(1)
        [message] = smtp.wait_for(1)
        assert delivery.signature_valid
        alert = delivery.body["alert"]
        assert (delivery.body["event"], alert["kind"], alert["threshold"]) == ("raised", "license_expires", 7)
        assert "…0007 expires in 6.5 days" in alert["summary"] and KEY not in str(delivery.body)
        assert message["Subject"].startswith("[Avtor License Manager] Alert: The license …0007 expires")
        assert smtp.envelopes[0] == ("avtor@example.com", ["it-ops@example.com"], True)
        status = cli.ok("status").out
        assert status.startswith("OPEN ALERTS (1):\n- The license …0007 expires in 6.5 days")

        # A second beat by mistake, several ticks of each: nothing is said twice.
        second = tmp_path / "second"
        second.mkdir()
        processes.append(CeleryProcess.beat(env, second).start(wait_for="beat: Starting..."))
        processes[-1].wait_for_log("Sending due task evaluate-alerts", count=3, timeout=20)
        assert (len(receiver.deliveries), len(smtp.messages)) == (1, 1)

        # The receiver fails the next request: the notice is tried again a second later.
        receiver.failures = [503]
        server.put_key(KEY, expires_in_days=365)
        rules = RevalidationRules(timedelta(days=3), timedelta(minutes=1), GRACE)
        refresh_license(KEY, "ada", store, service_of(server), utc_now(), rules)
        resolved = receiver.wait_for(2)[1]
        resolved_mail = smtp.wait_for(2)[1]
        assert resolved.signature_valid
        assert (resolved.body["event"], resolved.body["alert"]["key"]) == ("resolved", alert["key"])
        assert resolved.body["alert"]["raised_at"] == alert["raised_at"]
        assert resolved_mail["Subject"].startswith("[Avtor License Manager] Resolved:")
        time.sleep(2)
        assert (len(receiver.deliveries), len(smtp.messages)) == (2, 2)
    finally:
        for process in reversed(processes):
            process.stop()
    for process in processes:
        assert WEBHOOK_SECRET not in process.log() and SMTP_PASSWORD not in process.log()
        process.cleanup()

    attempts = cli.json("notify", "deliveries")["deliveries"]
    assert sorted((a["channel"], a["event"], a["attempt"], a["outcome"]) for a in attempts) == [
        ("it-ops", "raised", 1, "delivered"),
        ("it-ops", "resolved", 1, "delivered"),
        ("ops-hook", "raised", 1, "delivered"),
        ("ops-hook", "resolved", 1, "failed"),
        ("ops-hook", "resolved", 2, "delivered"),
    ]
    assert "the receiver answered HTTP 503" in {a["detail"] for a in attempts}
    assert "OPEN ALERTS" not in cli.ok("status").out
