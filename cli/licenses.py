"""`avtorlm license add|list|refresh|remove`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from cli.agreement import require_acceptance
from cli.context import Context
from cli.output import NOTHING, emit_json, plural, say, shown_key, table, users_hold, when
from cli.workers import DEFAULT_WAIT_SECONDS, Queued, ask_workers
from domain.licenses import masked_key
from domain.refusals import Refused
from domain.services.licenses import LicenseView, add_license, read_key, remove_license, seats_until
from domain.services.status import describe_ledger
from tasks.messages import license_message, status_message

LICENSE_HEADERS = ["KEY", "STATUS", "SEATS", "EXPIRES", "LAST VERIFIED", "NEXT CHECK"]


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the `license` commands."""
    license = commands.add_parser("license", help="add, list, refresh and remove license keys")
    actions = license.add_subparsers(dest="action", required=True, metavar="ACTION")

    add = actions.add_parser(
        "add", parents=[common], help="validate a key with the license service and add it"
    )
    add.add_argument("key", metavar="KEY", help="the license key as the vendor sent it")
    add.set_defaults(run=add_key)

    listing = actions.add_parser(
        "list", parents=[common], help="the licenses, their seats, expiry and checks"
    )
    listing.set_defaults(run=list_keys)

    refresh = actions.add_parser(
        "refresh", parents=[common], help="re-validate one license (or --all) now, through the workers"
    )
    which = refresh.add_mutually_exclusive_group(required=True)
    which.add_argument("key", metavar="KEY", nargs="?", help="the license to re-validate")
    which.add_argument("--all", action="store_true", help="re-validate every license")
    refresh.add_argument("--no-wait", action="store_true", help="send the request and print its task id")
    refresh.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_WAIT_SECONDS,
        metavar="SECONDS",
        help=f"how long to wait for the workers' answer (default {DEFAULT_WAIT_SECONDS:g})",
    )
    refresh.set_defaults(run=refresh_keys)

    remove = actions.add_parser("remove", parents=[common], help="remove a license; its seats go at once")
    remove.add_argument("key", metavar="KEY", help="the license key to remove")
    remove.set_defaults(run=remove_key)


def add_key(arguments: argparse.Namespace, context: Context) -> int:
    """Validate a key with the license service and add it; show its seats and expiry."""
    service = context.license_service()
    require_acceptance(context)
    settings = context.settings
    view = add_license(
        arguments.key,
        context.actor,
        context.store(),
        service,
        context.now(),
        settings.grace_period,
        settings.revalidate_every,
    )
    message = (
        f"The license {shown_key(view.key, context.show_keys)} is added: "
        f"{seats_until(view.seats_granted, view.expires_at)}."
    )
    return _changed(context, message, license=license_document(view, context.show_keys))


def list_keys(arguments: argparse.Namespace, context: Context) -> int:
    """Print every license with its status, seats, expiry and checks."""
    status = describe_ledger(context.store(), context.now(), context.settings.grace_period)
    if context.json:
        emit_json({"licenses": [license_document(view, context.show_keys) for view in status.licenses]})
        return 0
    if not status.licenses:
        say("No license has been added yet: add one with `avtorlm license add KEY`.")
        return 0
    say(table(LICENSE_HEADERS, license_rows(status.licenses, context.show_keys)))
    for view in status.licenses:
        if view.last_error:
            say(f"\n{shown_key(view.key, context.show_keys)}: {view.last_error}")
    counts = status.counts
    say(f"\n{plural(counts.licensed, 'seat')} licensed, {counts.in_use} in use, {counts.free} free.")
    return 0


def refresh_keys(arguments: argparse.Namespace, context: Context) -> int:
    """Send the on-demand refresh to the workers and, unless --no-wait, show what it came to."""
    context.trusted_public_key()
    require_acceptance(context)
    if arguments.all:
        task, kwargs = "avtor.admin.refresh_all", {"actor": context.actor}
    else:
        license_id = _added_license_id(context, read_key(arguments.key))
        task, kwargs = "avtor.admin.refresh_license", {"license_id": license_id, "actor": context.actor}
    answer = ask_workers(context.settings, task, kwargs, not arguments.no_wait, arguments.timeout)
    if isinstance(answer, Queued):
        message = (
            f"The refresh is sent to the workers as task {answer.task_id}: "
            "see `avtorlm license list` for its result."
        )
        return _report(context, {"ok": True, "message": message, "task_id": answer.task_id})
    if not answer.get("ok"):
        raise Refused(str(answer.get("message")))
    return _report(context, answer, _check_lines(answer))


def remove_key(arguments: argparse.Namespace, context: Context) -> int:
    """Remove a license; say so when users now exceed the seats left."""
    require_acceptance(context)
    view = remove_license(
        arguments.key, context.actor, context.store(), context.now(), context.settings.grace_period
    )
    return _changed(context, f"The license {shown_key(view.key, context.show_keys)} is removed.")


def license_document(view: LicenseView, show_keys: bool) -> dict[str, Any]:
    """One license as JSON, its key in full only if asked."""
    return {**license_message(view), "key": shown_key(view.key, show_keys)}


def license_rows(views: Sequence[LicenseView], show_keys: bool) -> list[list[str]]:
    """The rows of the licenses table."""
    return [
        [
            shown_key(view.key, show_keys),
            view.status.value,
            f"{view.seats_granted} of {view.seats}" if view.seats_granted != view.seats else str(view.seats),
            when(view.expires_at) if view.expires_at else "never",
            when(view.verified_at),
            when(view.next_check_at) if view.next_check_at else NOTHING,
        ]
        for view in views
    ]


def _added_license_id(context: Context, key: str) -> str:
    """The id of the license with `key`; the workers are told the id, never the key."""
    with context.store().reading() as uow:
        license = uow.licenses.get(key)
    if license is None:
        raise Refused(f"No license with the key {masked_key(key)} has been added: add it first.")
    return license.id


def _changed(context: Context, message: str, **extra: Any) -> int:
    """Report a change with the seat counts it left."""
    status = describe_ledger(context.store(), context.now(), context.settings.grace_period)
    document = {"ok": True, "message": message, **extra, **status_message(status)}
    document["licenses"] = [license_document(view, context.show_keys) for view in status.licenses]
    counts = status.counts
    lines = [f"Seats: {counts.licensed} licensed, {counts.in_use} in use, {counts.free} free."]
    if counts.over_limit_by:
        lines.append(
            f"{users_hold(counts.in_use)}, {counts.over_limit_by} more than licensed: "
            "nobody may use Avtor until users are removed (`avtorlm user remove NAME`) or licenses are added."
        )
    return _report(context, document, lines)


def _report(context: Context, document: dict[str, Any], lines: Sequence[str] = ()) -> int:
    if context.json:
        emit_json(document)
    else:
        say(str(document["message"]))
        for line in lines:
            say(line)
    return 0


def _check_lines(answer: dict[str, Any]) -> list[str]:
    """A line per license checked by a refresh of all, and the counts afterwards."""
    lines = [f"  {check['message']}" for check in answer.get("checked", [])]
    if "seats_licensed" in answer:
        lines.append(
            f"Seats: {answer['seats_licensed']} licensed, {answer['seats_in_use']} in use, "
            f"{answer['seats_free']} free."
        )
    return lines


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds greater than zero")
    return value
