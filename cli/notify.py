"""`avtorlm notify add-webhook|add-email|list|remove|deliveries`: where alerts are sent.

Secrets (a webhook's signing key, an SMTP password) are read from standard input or
typed at the terminal, never taken as arguments (which other users see in `ps`), and
are shown masked.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from adapters.sql.notices import SqlNotices
from cli.context import Context
from cli.output import emit_json, instant, say, shortened, table, when
from domain.notices import Channel, ChannelKind, masked_secret
from domain.refusals import Refused
from domain.services.notices import add_email, add_webhook, remove_channel


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the `notify` commands."""
    notify = commands.add_parser("notify", help="where alerts are sent: webhooks and e-mail")
    actions = notify.add_subparsers(dest="action", required=True, metavar="ACTION")

    webhook = actions.add_parser(
        "add-webhook", parents=[common], help="POST alerts, signed with a secret, to a URL"
    )
    webhook.add_argument("name", metavar="NAME", help="the channel's name, e.g. ops-webhook")
    webhook.add_argument("url", metavar="URL", help="where notices are POSTed (http:// or https://)")
    webhook.add_argument(
        "--secret-stdin",
        action="store_true",
        help="read the signing secret from standard input (its first line); otherwise it is asked for",
    )
    webhook.set_defaults(run=add_webhook_channel)

    email = actions.add_parser("add-email", parents=[common], help="e-mail alerts through an SMTP server")
    email.add_argument("name", metavar="NAME", help="the channel's name, e.g. it-ops-mail")
    email.add_argument("to", metavar="TO", help="recipients, comma-separated")
    email.add_argument("--host", required=True, help="the SMTP server's host name")
    email.add_argument("--port", type=int, default=587, help="the SMTP server's port (default 587)")
    email.add_argument("--from", dest="sender", required=True, metavar="ADDRESS", help="the sender's address")
    email.add_argument("--user", default="", help="the SMTP user to authenticate as (none: no AUTH)")
    email.add_argument(
        "--no-starttls",
        dest="starttls",
        action="store_false",
        help="send without STARTTLS (only for a server on this machine); by default STARTTLS is required",
    )
    email.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the SMTP password from standard input (its first line); otherwise it is asked for",
    )
    email.set_defaults(run=add_email_channel)

    listing = actions.add_parser("list", parents=[common], help="the channels (secrets masked)")
    listing.set_defaults(run=list_channels)

    remove = actions.add_parser("remove", parents=[common], help="remove a channel")
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(run=remove_notice_channel)

    deliveries = actions.add_parser(
        "deliveries", parents=[common], help="every attempt to deliver a notice, newest first"
    )
    deliveries.add_argument("--limit", type=int, default=50, help="how many attempts to show (default 50)")
    deliveries.set_defaults(run=list_deliveries)


def add_webhook_channel(arguments: argparse.Namespace, context: Context) -> int:
    """Add a webhook channel."""
    secret = _read_secret(arguments.secret_stdin, "Signing secret", "--secret-stdin")
    channel = add_webhook(arguments.name, arguments.url, secret, _book(context), context.now())
    return _done(
        context,
        f"Alerts will be POSTed to {channel.target} as {channel.name!r}, signed with the secret "
        f"{masked_secret(secret)} (X-Avtor-Signature; docs/alerts.md says how to check it).",
    )


def add_email_channel(arguments: argparse.Namespace, context: Context) -> int:
    """Add an SMTP channel."""
    password = (
        _read_secret(arguments.password_stdin, "SMTP password", "--password-stdin") if arguments.user else ""
    )
    channel = add_email(
        arguments.name,
        arguments.to,
        host=arguments.host,
        port=arguments.port,
        sender=arguments.sender,
        user=arguments.user,
        password=password,
        starttls=arguments.starttls,
        book=_book(context),
        now=context.now(),
    )
    return _done(
        context,
        f"Alerts will be e-mailed to {channel.target} through {arguments.host}:{arguments.port} "
        f"as {channel.name!r}.",
    )


def list_channels(arguments: argparse.Namespace, context: Context) -> int:
    """Print the channels, secrets masked."""
    channels = _book(context).channels()
    if context.json:
        emit_json({"channels": [channel_message(channel) for channel in channels]})
        return 0
    if not channels:
        say(
            "No channel: alerts are only shown by `avtorlm status`. "
            "Add one with `avtorlm notify add-webhook` or `avtorlm notify add-email`."
        )
        return 0
    rows = [
        [c.name, c.kind.value, channel_where(c), masked_secret(c.secret), when(c.created_at)]
        for c in channels
    ]
    say(table(["NAME", "KIND", "TARGET", "SECRET", "ADDED"], rows))
    return 0


def channel_message(channel: Channel) -> dict[str, Any]:
    """A channel as `--json` shows it: the secret masked."""
    return {
        "name": channel.name,
        "kind": channel.kind.value,
        "target": channel.target,
        "secret": masked_secret(channel.secret),
        "options": channel.options,
        "created_at": instant(channel.created_at),
    }


def channel_where(channel: Channel) -> str:
    """Where a channel's notices go: the URL, or the recipients and the SMTP server (no secret)."""
    if channel.kind is ChannelKind.EMAIL:
        options = channel.options
        tls = "STARTTLS" if options.get("starttls", True) else "no TLS"
        user = f", user {options['user']}" if options.get("user") else ""
        return f"{channel.target} via {options['host']}:{options['port']} ({tls}{user})"
    return channel.target


def remove_notice_channel(arguments: argparse.Namespace, context: Context) -> int:
    """Remove a channel."""
    name = remove_channel(arguments.name, _book(context))
    return _done(context, f"The channel {name!r} is removed: no more alerts are sent to it.")


def list_deliveries(arguments: argparse.Namespace, context: Context) -> int:
    """Print the latest delivery attempts."""
    attempts = _book(context).attempts(max(1, arguments.limit))
    if context.json:
        emit_json(
            {
                "deliveries": [
                    {
                        "notice_id": a.notice_id,
                        "channel": a.channel,
                        "alert": a.alert_key,
                        "event": a.notice_kind,
                        "attempt": a.attempt,
                        "at": instant(a.at),
                        "outcome": a.outcome,
                        "detail": a.detail,
                    }
                    for a in attempts
                ]
            }
        )
        return 0
    if not attempts:
        say("No notice has been sent yet.")
        return 0
    rows = [
        [when(a.at), a.channel, a.notice_kind, a.alert_key, str(a.attempt), a.outcome, shortened(a.detail)]
        for a in attempts
    ]
    say(table(["AT", "CHANNEL", "EVENT", "ALERT", "TRY", "OUTCOME", "DETAIL"], rows))
    return 0


def _book(context: Context) -> SqlNotices:
    return SqlNotices(context.store().engine)


def _read_secret(from_stdin: bool, prompt: str, option: str) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise Refused(
            f"Give the {prompt.lower()} on standard input with {option}, or run this at a terminal."
        )
    return getpass.getpass(f"{prompt}: ")


def _done(context: Context, message: str) -> int:
    if context.json:
        emit_json({"ok": True, "message": message})
    else:
        say(message)
    return 0
