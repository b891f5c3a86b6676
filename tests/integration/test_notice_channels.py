"""Notices on real channels: a webhook receiver on loopback, an SMTP server with STARTTLS and AUTH."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from adapters.notifications import send_email, send_webhook
from adapters.sql import SqlStore
from adapters.sql.notices import SqlNotices
from domain.alerts import Alert, AlertKind, Notice, NoticeKind
from domain.notices import Channel, ChannelKind, DeliveryFailed, notice_document
from domain.services.notices import DELIVERED, FAILED, GAVE_UP, add_email, add_webhook, deliver_notice
from tests.support.notices import SmtpServer, smtp_server, webhook_receiver

NOW = datetime(2027, 3, 1, 12, tzinfo=UTC)
SECRET = "whsec-0123456789abcdef"
SMTP_PASSWORD = "smtp-pass-0123456"
ALERT = Alert(
    AlertKind.LICENSE_EXPIRES,
    "license-id-1",
    7,
    "The license …0001 expires in 6.5 days, at 2027-03-08T00:00:00Z.",
    "Renew it with the vendor, then refresh it (avtorlm license refresh).",
)


def document(kind: NoticeKind = NoticeKind.RAISED) -> dict[str, Any]:
    return notice_document(Notice(kind, ALERT, NOW, NOW), "install-1")


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path, "alerts", SMTP_PASSWORD) as server:
        yield server


def email_channel(smtp: SmtpServer, password: str = SMTP_PASSWORD) -> Channel:
    options = {"host": "127.0.0.1", "port": smtp.port, "sender": "avtor@example.com", "user": "alerts"}
    return Channel(
        "mail", ChannelKind.EMAIL, "it-ops@example.com", password, NOW, {**options, "starttls": True}
    )


def test_a_webhook_is_signed_over_timestamp_and_body_and_the_receiver_verifies_it() -> None:
    with webhook_receiver(SECRET) as receiver, requests.Session() as session:
        answer = send_webhook(session, receiver.url, SECRET, document(), datetime.now(UTC))
        [delivery] = receiver.deliveries
    assert answer == "HTTP 204"
    assert delivery.signature_valid
    assert delivery.body == document()
    assert delivery.body["schema"] == "avtor.alert.v1" and delivery.body["event"] == "raised"
    assert delivery.headers["X-Avtor-Signature"].startswith("sha256=")


def test_a_webhook_signed_with_another_secret_is_refused_by_the_receiver() -> None:
    with webhook_receiver(SECRET) as receiver, requests.Session() as session:
        with pytest.raises(DeliveryFailed, match="HTTP 401"):
            send_webhook(session, receiver.url, "another-secret-0123456", document(), datetime.now(UTC))
        assert not receiver.deliveries[0].signature_valid


def test_an_email_goes_over_starttls_with_authentication_as_plain_text(smtp: SmtpServer) -> None:
    answer = send_email(email_channel(smtp), document(), tls=smtp.client_tls())
    [message] = smtp.messages
    assert answer == "sent to it-ops@example.com"
    assert smtp.envelopes == [("avtor@example.com", ["it-ops@example.com"], True)]
    assert message["Subject"].startswith("[Avtor License Manager] Alert: The license …0001 expires")
    assert message.get_content_type() == "text/plain"
    text = message.get_content()
    assert "What to do: Renew it with the vendor" in text and SMTP_PASSWORD not in text


def test_a_wrong_smtp_password_fails_the_delivery_without_showing_it(smtp: SmtpServer) -> None:
    with pytest.raises(DeliveryFailed) as failure:
        send_email(email_channel(smtp, "wrong-password-0000"), document(), tls=smtp.client_tls())
    assert "password" in str(failure.value) and "wrong-password" not in str(failure.value)
    assert smtp.messages == []


def test_an_smtp_server_whose_certificate_is_not_trusted_gets_nothing(smtp: SmtpServer) -> None:
    with pytest.raises(DeliveryFailed, match="could not be reached"):
        send_email(email_channel(smtp), document())
    assert smtp.messages == []


def test_every_delivery_attempt_is_recorded_and_the_last_failure_gives_up(store: SqlStore) -> None:
    book = SqlNotices(store.engine)
    with webhook_receiver(SECRET) as receiver, requests.Session() as session:
        add_webhook("ops-hook", receiver.url, SECRET, book, NOW)
        receiver.failures = [503, 503]

        def post(channel: Channel, body: dict[str, Any]) -> str:
            return send_webhook(session, channel.target, channel.secret, body, datetime.now(UTC))

        senders = {ChannelKind.WEBHOOK: post}
        outcomes = [
            deliver_notice("ops-hook", document(), attempt, attempt == 3, book, senders, NOW).outcome
            for attempt in (1, 2, 3)
        ]
        assert outcomes == [FAILED, FAILED, DELIVERED]
        receiver.failures = [500]
        assert deliver_notice("ops-hook", document(), 1, True, book, senders, NOW).outcome == GAVE_UP
    attempts = book.attempts()
    assert [(a.attempt, a.outcome) for a in reversed(attempts)] == [
        (1, FAILED),
        (2, FAILED),
        (3, DELIVERED),
        (1, GAVE_UP),
    ]
    assert attempts[-1].detail == "the receiver answered HTTP 503"
    assert {a.notice_id for a in attempts} == {document()["id"]}


def test_channels_are_kept_with_their_secrets_and_listed(store: SqlStore, smtp: SmtpServer) -> None:
    book = SqlNotices(store.engine)
    add_email(
        "it-ops",
        "a@example.com, b@example.com",
        host="127.0.0.1",
        port=smtp.port,
        sender="avtor@example.com",
        user="alerts",
        password=SMTP_PASSWORD,
        starttls=True,
        book=book,
        now=NOW,
    )
    [channel] = book.channels()
    assert (channel.target, channel.secret, channel.options["port"]) == (
        "a@example.com, b@example.com",
        SMTP_PASSWORD,
        smtp.port,
    )
