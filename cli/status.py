"""`avtorlm status`: seats licensed, in use, free, over the limit, and what to do about it."""

from __future__ import annotations

import argparse
from typing import Any

from cli import enrolment
from cli.agreement import ACCEPT_COMMAND
from cli.context import Context
from cli.licenses import LICENSE_HEADERS, license_document, license_rows
from cli.output import emit_json, say, table, users_hold, when
from cli.workers import WorkersUnavailable
from config.settings import DEVELOPMENT_MODE_NOTICE
from domain.alerts import OpenAlert
from domain.moments import format_instant
from domain.seat_policy import OverLimitPolicy
from domain.services.alerts import open_alerts
from domain.services.ledger import SeatCounts
from domain.services.status import LedgerStatus, describe_ledger
from tasks.messages import agreement_message, counts_message


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the `status` command."""
    status = commands.add_parser(
        "status", parents=[common], help="seats licensed, in use and free; what to do when none are left"
    )
    status.set_defaults(run=show_status)


def show_status(arguments: argparse.Namespace, context: Context) -> int:
    """Print the seat counts, the licenses and the agreement."""
    policy = OverLimitPolicy(context.settings.over_limit_policy)
    status = describe_ledger(context.store(), context.now(), context.settings.grace_period, policy)
    alerts = open_alerts(context.store())
    development_mode = context.settings.development_mode
    if context.json:
        document = status_document(status, context.show_keys)
        emit_json(
            {
                "alerts": [alert_document(alert) for alert in alerts],
                **document,
                "development_mode": development_mode,
                "enrolment": _enrolment_document(context),
            }
        )
        return 0
    for line in alert_lines(alerts):
        say(line)
    if development_mode:
        say(DEVELOPMENT_MODE_NOTICE)
        say()
    counts = status.counts
    say(f"Seats licensed: {counts.licensed}")
    say(f"Seats in use:   {counts.in_use}")
    say(f"Seats free:     {counts.free}")
    say(f"Over limit:     {'by ' + str(counts.over_limit_by) if counts.over_limit_by else 'no'}")
    say(f"Policy:         {status.policy.value} ({status.policy.describe()})")
    if status.refused:
        names = ", ".join(seat.display_name for seat in status.refused)
        say(f"Refused:        {names} (the newest seat holders beyond the licensed count)")
    say()
    if status.licenses:
        say(table(LICENSE_HEADERS, license_rows(status.licenses, context.show_keys)))
    else:
        say("No license has been added yet.")
    say()
    if status.agreement is None or not status.agreement.is_current:
        say(f"The license agreement has not been accepted yet: `{ACCEPT_COMMAND}`.")
    else:
        accepted = status.agreement
        say(
            f"License agreement {accepted.version} accepted by {accepted.accepted_by} "
            f"at {when(accepted.accepted_at)}."
        )
    advice = what_to_do(counts, status.policy)
    if advice:
        say()
        say(advice)
    say()
    for line in _enrolment_lines(context):
        say(line)
    return 0


def alert_lines(alerts: list[OpenAlert]) -> list[str]:
    """The open alerts, most recent first, each with what to do; then a blank line."""
    if not alerts:
        return []
    lines = [f"OPEN ALERTS ({len(alerts)}):"]
    for open_alert in alerts:
        alert = open_alert.alert
        lines.append(f"- {alert.summary} (since {when(open_alert.raised_at)})")
        lines.append(f"  {alert.action}")
    return [*lines, ""]


def alert_document(open_alert: OpenAlert) -> dict[str, Any]:
    """An open alert as `--json` shows it: the webhook's `alert` object."""
    alert = open_alert.alert
    return {
        "key": alert.key,
        "kind": alert.kind.value,
        "subject": alert.subject,
        "threshold": alert.threshold,
        "raised_at": format_instant(open_alert.raised_at),
        "summary": alert.summary,
        "action": alert.action,
    }


def status_document(status: LedgerStatus, show_keys: bool) -> dict[str, Any]:
    """The status as JSON, in the shape of the `avtor.admin.status` task's result."""
    return {
        **counts_message(status.counts),
        "licenses": [license_document(view, show_keys) for view in status.licenses],
        "agreement": agreement_message(status.agreement),
        "advice": what_to_do(status.counts, status.policy),
        "over_limit_policy": status.policy.value,
        "refused": [seat.username for seat in status.refused],
    }


def _enrolment_document(context: Context) -> dict[str, Any]:
    try:
        return enrolment.state_document(enrolment.read_state(context.settings))
    except WorkersUnavailable as error:
        return {"error": str(error)}


def _enrolment_lines(context: Context) -> list[str]:
    try:
        return enrolment.state_lines(enrolment.read_state(context.settings))
    except WorkersUnavailable as error:
        return [f"Enrolment: unknown. {error}"]


def what_to_do(counts: SeatCounts, policy: OverLimitPolicy = OverLimitPolicy.BLOCK_ALL) -> str | None:
    """The line that tells the administrator what to do when over the limit or out of seats."""
    if counts.over_limit_by:
        who = (
            "Nobody may use Avtor"
            if policy is OverLimitPolicy.BLOCK_ALL
            else "The newest seat holders beyond the licensed count are refused"
        )
        return (
            f"OVER LIMIT: {users_hold(counts.in_use)} but the licenses grant only "
            f"{counts.licensed}. {who} until {_are_removed(counts.over_limit_by)} "
            "(`avtorlm user list`, `avtorlm user remove NAME`) or licenses are added "
            "(`avtorlm license add KEY`)."
        )
    if counts.licensed == 0:
        return "No seats are licensed: add a license with `avtorlm license add KEY`."
    if counts.free == 0:
        return (
            f"No seat is free: all {counts.licensed} are in use, so the next editor without a seat will be "
            "refused. Add a license (`avtorlm license add KEY`) or remove users (`avtorlm user remove NAME`)."
        )
    return None


def _are_removed(users: int) -> str:
    return "1 user is removed" if users == 1 else f"{users} users are removed"
