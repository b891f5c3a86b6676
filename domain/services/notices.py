"""Channels of notices, and delivering one notice to one channel with every attempt recorded."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from domain.notices import (
    Channel,
    ChannelKind,
    DeliveryAttempt,
    DeliveryFailed,
    checked_name,
    checked_recipients,
    checked_webhook_url,
)
from domain.ports import NoticeChannels
from domain.refusals import Refused

# Sends a notice's document to a channel; returns what the far end answered, raises on failure.
Sender = Callable[[Channel, dict[str, Any]], str]

DELIVERED, FAILED, GAVE_UP = "delivered", "failed", "gave-up"


class NoChannel(Refused):
    """The channel named does not exist (any more)."""


def add_webhook(name: str, url: str, secret: str, book: NoticeChannels, now: datetime) -> Channel:
    """Add a webhook: notices are POSTed to `url`, signed with `secret`."""
    if len(secret) < 16:
        raise Refused(
            "The webhook's secret is too short: give at least 16 characters (e.g. the output of "
            "`openssl rand -hex 32`), the same the receiver checks signatures with."
        )
    channel = Channel(checked_name(name), ChannelKind.WEBHOOK, checked_webhook_url(url), secret, now)
    book.add_channel(channel)
    return channel


def add_email(
    name: str,
    recipients: str,
    *,
    host: str,
    port: int,
    sender: str,
    user: str,
    password: str,
    starttls: bool,
    book: NoticeChannels,
    now: datetime,
) -> Channel:
    """Add an SMTP target: notices are e-mailed to `recipients` through `host`:`port`."""
    if not host.strip() or not 0 < port < 65536:
        raise Refused(f"The SMTP server {host}:{port} is not usable: give its host name and port (e.g. 587).")
    if user and not password:
        raise Refused(
            "An SMTP user needs its password: give it on standard input with --password-stdin, "
            "or type it when asked."
        )
    options = {
        "host": host.strip(),
        "port": port,
        "sender": checked_recipients(sender),
        "user": user,
        "starttls": starttls,
    }
    channel = Channel(
        checked_name(name), ChannelKind.EMAIL, checked_recipients(recipients), password, now, options
    )
    book.add_channel(channel)
    return channel


def remove_channel(name: str, book: NoticeChannels) -> str:
    """Remove a channel; notices already on their way to it are dropped."""
    name = name.strip().lower()
    if not book.remove_channel(name):
        raise NoChannel(f"There is no channel named {name!r}: `avtorlm notify list` shows them.")
    return name


def deliver_notice(
    channel_name: str,
    document: dict[str, Any],
    attempt: int,
    last_attempt: bool,
    book: NoticeChannels,
    senders: Mapping[ChannelKind, Sender],
    now: datetime,
) -> DeliveryAttempt:
    """Try once to deliver a notice to a channel, and record the attempt; it says how it went.

    A failed attempt is recorded `failed` (to be tried again) or, if it was the last, `gave-up`.
    """
    channel = book.channel(channel_name)
    if channel is None:
        raise NoChannel(f"The channel {channel_name!r} was removed: the notice is not delivered.")
    try:
        outcome, detail = DELIVERED, senders[channel.kind](channel, document)
    except DeliveryFailed as error:
        outcome, detail = (GAVE_UP if last_attempt else FAILED), str(error) or error.__class__.__name__
    recorded = DeliveryAttempt(
        notice_id=str(document["id"]),
        channel=channel.name,
        alert_key=str(document["alert"]["key"]),
        notice_kind=str(document["event"]),
        attempt=attempt,
        at=now,
        outcome=outcome,
        detail=detail,
    )
    book.record_attempt(recorded)
    return recorded
