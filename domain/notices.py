"""Where alerts are sent (webhooks, e-mail), and what a notice says on each.

The webhook body has a stable schema (`SCHEMA`, docs/alerts.md); the e-mail is plain
text an administrator can act on. Channels' secrets (a webhook's signing key, an SMTP
password) are shown masked everywhere.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from domain.alerts import Notice, NoticeKind
from domain.moments import format_instant
from domain.refusals import Refused

SCHEMA = "avtor.alert.v1"
# Notices with the same alert, threshold, kind and raising instant are one notice: receivers
# may drop a second delivery of the same id (a retry after a lost answer).
NOTICE_IDS = uuid.UUID("9d5c3a52-6b1f-4c1e-9a57-1f0c6e2b7a10")
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
ADDRESS = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+$")


class DeliveryFailed(Exception):
    """A channel did not take a notice; the message says why, without any secret."""


class ChannelKind(StrEnum):
    """How notices reach the administrator."""

    WEBHOOK = "webhook"
    EMAIL = "email"


@dataclass(frozen=True)
class Channel:
    """A webhook URL with its signing secret, or an SMTP target with its password."""

    name: str
    kind: ChannelKind
    # The webhook's URL, or the e-mail's recipients, comma-separated.
    target: str
    secret: str
    created_at: datetime
    # For e-mail: host, port, starttls, user, sender.
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DeliveryAttempt:
    """One attempt to deliver a notice to a channel, and how it went."""

    notice_id: str
    channel: str
    alert_key: str
    notice_kind: str
    attempt: int
    at: datetime
    outcome: str
    detail: str
    id: int | None = None


def masked_secret(secret: str) -> str:
    """A secret as listings and logs show it: never more than its last two characters."""
    return "(none)" if not secret else "****" + (secret[-2:] if len(secret) >= 12 else "")


def checked_name(name: str) -> str:
    """A channel's name in lower case, or a refusal that says what names look like."""
    name = name.strip().lower()
    if not NAME.match(name):
        raise Refused(
            f"The channel name {name!r} is not usable: use 1 to 100 letters, digits, dots, dashes or "
            "underscores, starting with a letter or digit (e.g. ops-webhook)."
        )
    return name


def checked_webhook_url(url: str) -> str:
    """A webhook URL (http or https, with a host), or a refusal."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused(f"The webhook URL {url!r} is not usable: give an http:// or https:// URL with a host.")
    return url.strip()


def checked_recipients(addresses: str) -> str:
    """E-mail recipients, comma-separated, or a refusal."""
    found = [address.strip() for address in addresses.split(",") if address.strip()]
    wrong = [address for address in found if not ADDRESS.match(address)]
    if not found or wrong:
        raise Refused(
            f"The recipients {addresses!r} are not usable: give e-mail addresses separated by commas "
            "(e.g. it-ops@example.com)."
        )
    return ", ".join(found)


def notice_id(notice: Notice) -> str:
    """The notice's stable id: the same for every channel and every delivery attempt."""
    alert = notice.alert
    raised_at = format_instant(notice.raised_at, "microseconds")
    name = f"{notice.kind.value}|{alert.key}|{alert.threshold}|{raised_at}"
    return str(uuid.uuid5(NOTICE_IDS, name))


def notice_document(notice: Notice, installation_id: str) -> dict[str, Any]:
    """The notice as the webhook's JSON body (schema `avtor.alert.v1`)."""
    alert = notice.alert
    return {
        "schema": SCHEMA,
        "id": notice_id(notice),
        "event": notice.kind.value,
        "at": format_instant(notice.at),
        "installation_id": installation_id,
        "alert": {
            "key": alert.key,
            "kind": alert.kind.value,
            "subject": alert.subject,
            "threshold": alert.threshold,
            "raised_at": format_instant(notice.raised_at),
            "summary": alert.summary,
            "action": alert.action,
        },
    }


def email_subject(document: dict[str, Any]) -> str:
    """The subject line of a notice's e-mail."""
    alert = document["alert"]
    prefix = "Resolved" if document["event"] == NoticeKind.RESOLVED.value else "Alert"
    return f"[Avtor License Manager] {prefix}: {alert['summary']}"[:200]


def email_text(document: dict[str, Any]) -> str:
    """The plain-text body of a notice's e-mail: what happened, and what to do."""
    alert = document["alert"]
    if document["event"] == NoticeKind.RESOLVED.value:
        return (
            f"Resolved: the condition raised at {alert['raised_at']} has ended.\n\n"
            f"It was: {alert['summary']}\n\n"
            "Nothing needs to be done.\n\n"
            f"Alert: {alert['key']} (threshold {alert['threshold']})\n"
            f"Installation: {document['installation_id']}\n"
            f"Notice: {document['id']} at {document['at']}\n"
        )
    return (
        f"{alert['summary']}\n\n"
        f"What to do: {alert['action']}\n\n"
        '`avtorlm status` shows this alert until its condition ends; you will get a "Resolved" '
        "message then.\n\n"
        f"Alert: {alert['key']} (threshold {alert['threshold']}), raised at {alert['raised_at']}\n"
        f"Installation: {document['installation_id']}\n"
        f"Notice: {document['id']}\n"
    )
