"""`avtorlm events`: the audit log, filtered by kind and time."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from cli.context import Context
from cli.output import NOTHING, emit_json, instant, say, table, when
from config.settings import DURATION_HELP, parse_duration
from domain.events import AuditEvent, EventKind
from domain.moments import parse_instant, utc_now
from domain.services.audit import audit_log

DEFAULT_LIMIT = 100
EVENT_HEADERS = ["AT", "KIND", "BY", "SUBJECT", "OUTCOME", "SEATS IN USE", "LICENSED", "DETAIL"]
TIME_HELP = f"an RFC 3339 instant (2026-11-29T08:00:00Z), a date (2026-11-29, UTC), or {DURATION_HELP} ago"


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the `events` command."""
    events = commands.add_parser(
        "events", parents=[common], help="the audit log: who changed licenses and seats, and when"
    )
    events.add_argument(
        "--kind",
        action="append",
        choices=[kind.value for kind in EventKind],
        metavar="KIND",
        help="only events of this kind (repeatable): " + ", ".join(kind.value for kind in EventKind),
    )
    events.add_argument(
        "--since", type=point_in_time, metavar="TIME", help=f"events at or after TIME: {TIME_HELP}"
    )
    events.add_argument("--until", type=point_in_time, metavar="TIME", help="events before TIME")
    events.add_argument(
        "--limit",
        type=_positive,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"the latest N events (default {DEFAULT_LIMIT})",
    )
    events.add_argument("--all", action="store_true", help="every matching event, however many")
    events.set_defaults(run=show_events)


def show_events(arguments: argparse.Namespace, context: Context) -> int:
    """Print the matching events, oldest first."""
    kinds = [EventKind(kind) for kind in arguments.kind or []]
    limit = None if arguments.all else arguments.limit
    events = audit_log(context.store(), kinds, arguments.since, arguments.until, limit)
    if context.json:
        emit_json({"events": [event_document(event) for event in events]})
        return 0
    if not events:
        say("No events match.")
        return 0
    say(table(EVENT_HEADERS, [_event_row(event) for event in events]))
    if limit is not None and len(events) == limit:
        say(f"\nThe latest {limit} matching events; --all or --since shows more.")
    return 0


def event_document(event: AuditEvent) -> dict[str, Any]:
    """One audit event as JSON."""
    return {
        "id": event.id,
        "kind": event.kind.value,
        "at": instant(event.at),
        "actor": event.actor,
        "subject": event.subject,
        "outcome": event.outcome,
        "request_id": event.request_id,
        "seats_in_use_before": event.seats_used_before,
        "seats_in_use_after": event.seats_used_after,
        "seats_licensed_before": event.seats_total_before,
        "seats_licensed_after": event.seats_total_after,
        "detail": event.detail,
    }


def point_in_time(text: str) -> datetime:
    """Read --since/--until: an instant, a UTC date, or a duration before now."""
    try:
        return parse_instant(text if "T" in text.upper() else text + "T00:00:00Z")
    except ValueError:
        pass
    try:
        return utc_now() - parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {TIME_HELP}") from None


def _event_row(event: AuditEvent) -> list[str]:
    return [
        when(event.at),
        event.kind.value,
        event.actor,
        event.subject,
        event.outcome or NOTHING,
        _change(event.seats_used_before, event.seats_used_after),
        _change(event.seats_total_before, event.seats_total_after),
        event.detail or NOTHING,
    ]


def _change(before: int, after: int) -> str:
    return str(after) if before == after else f"{before} -> {after}"


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return int(text)
