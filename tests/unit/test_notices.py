"""What a notice says on a webhook and in an e-mail, and how channels' secrets are shown."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from adapters.notifications import signature
from adapters.notifications.webhook import webhook_body
from domain.alerts import Alert, AlertKind, Notice, NoticeKind
from domain.notices import (
    checked_name,
    checked_recipients,
    email_subject,
    email_text,
    masked_secret,
    notice_document,
)
from domain.refusals import Refused

NOW = datetime(2027, 3, 1, 12, tzinfo=UTC)
ALERT = Alert(AlertKind.OVER_LIMIT, "seats", 2, "12 users hold seats but 10 are licensed.", "Remove 2 users.")


def test_the_webhook_body_has_the_documented_schema_and_a_stable_id() -> None:
    raised = notice_document(Notice(NoticeKind.RAISED, ALERT, NOW, NOW), "install-1")
    assert set(raised) == {"schema", "id", "event", "at", "installation_id", "alert"}
    assert set(raised["alert"]) == {"key", "kind", "subject", "threshold", "raised_at", "summary", "action"}
    assert raised["alert"]["key"] == "over_limit:seats" and raised["at"] == "2027-03-01T12:00:00Z"
    again = notice_document(Notice(NoticeKind.RAISED, ALERT, NOW, NOW), "install-1")
    resolved = notice_document(Notice(NoticeKind.RESOLVED, ALERT, NOW, NOW), "install-1")
    assert again["id"] == raised["id"] != resolved["id"]


def test_the_signature_is_an_hmac_sha256_over_timestamp_dot_body() -> None:
    body = webhook_body({"b": 1, "a": "é"})
    assert body == '{"a":"é","b":1}'.encode()
    expected = hmac.new(b"secret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature("secret", "1700000000", body) == f"sha256={expected}"


def test_an_email_says_what_happened_and_what_to_do() -> None:
    document = notice_document(Notice(NoticeKind.RAISED, ALERT, NOW, NOW), "install-1")
    assert (
        email_subject(document) == "[Avtor License Manager] Alert: 12 users hold seats but 10 are licensed."
    )
    assert "What to do: Remove 2 users." in email_text(document)
    resolved = notice_document(Notice(NoticeKind.RESOLVED, ALERT, NOW, NOW), "install-1")
    assert email_subject(resolved).startswith("[Avtor License Manager] Resolved:")
    assert "Nothing needs to be done." in email_text(resolved)


@pytest.mark.parametrize("secret", ["whsec-0123456789abcdef", "short", ""])
def test_a_secret_is_never_shown_beyond_two_characters(secret: str) -> None:
    shown = masked_secret(secret)
    assert secret[:-2] not in shown or not secret[:-2]


def test_channel_names_and_recipients_are_checked() -> None:
    assert checked_name(" Ops-Hook ") == "ops-hook"
    assert checked_recipients("a@example.com ,b@example.com") == "a@example.com, b@example.com"
    with pytest.raises(Refused, match="not usable"):
        checked_name("ops hook")
    with pytest.raises(Refused, match="e-mail addresses"):
        checked_recipients("it-ops")
