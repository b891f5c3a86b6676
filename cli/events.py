"""`avtorlm events`: the audit log at a glance, or filtered by kind and time."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from cli.context import Context
from cli.output import NOTHING, emit_json, instant, say, table, when
from config.settings import DURATION_HELP, parse_duration
from domain.events import AuditEvent, EventKind, EventTally
from domain.moments import parse_instant, utc_now
from domain.services.audit import audit_log, audit_overview

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
        help=f"the latest N events; without filters, the latest N of each group (default {DEFAULT_LIMIT})",
    )
    events.add_argument("--all", action="store_true", help="every event one by one, however many")
    events.set_defaults(run=show_events)


def show_events(arguments: argparse.Namespace, context: Context) -> int:
    """Print the audit log at a glance or, with a filter or --all, the matching events one by one."""
    if not (arguments.kind or arguments.since or arguments.until or arguments.all):
        return show_overview(arguments.limit, context)
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


def show_overview(limit: int, context: Context) -> int:
    """Print the latest changes, license checks and grants, and each editor's refused starts counted."""
    overview = audit_overview(context.store(), limit)
    if context.json:
        emit_json(
            {
                "events": [event_document(event) for event in overview.events],
                "refused_starts": [tally_document(tally) for tally in overview.refused_starts],
            }
        )
        return 0
    if not overview.events and not overview.refused_starts:
        say("No events yet.")
        return 0
    if overview.events:
        say(table(EVENT_HEADERS, [_event_row(event) for event in overview.events]))
        say(f"\nUp to the latest {limit} administrator changes, license checks and seat grants each.")
    if overview.refused_starts:
        say(f"\nRefused starts, counted per editor{_most_recent(len(overview.refused_starts), limit)}:")
        for tally in overview.refused_starts:
            say(f"  {refused_times(tally)}")
    say("Every event one by one: --all, or choose with --kind, --since and --until.")
    return 0


def refused_times(tally: EventTally) -> str:
    """'sitecore\\bob: refused 37 times between A and B (no_seats)'."""
    reason = f" ({tally.outcome})" if tally.outcome else ""
    if tally.count == 1:
        return f"{tally.subject}: refused once at {when(tally.first_at)}{reason}"
    return (
        f"{tally.subject}: refused {tally.count} times between {when(tally.first_at)} "
        f"and {when(tally.last_at)}{reason}"
    )


def tally_document(tally: EventTally) -> dict[str, Any]:
    """An editor's refused starts with one outcome, counted, as JSON."""
    return {
        "editor": tally.subject,
        "outcome": tally.outcome,
        "count": tally.count,
        "first_at": instant(tally.first_at),
        "last_at": instant(tally.last_at),
    }


def _most_recent(shown: int, limit: int) -> str:
    return f" (the {limit} refused most recently)" if shown == limit else ""


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
