"""`avtorlm eula show` and `avtorlm eula accept --by NAME`."""

from __future__ import annotations

import argparse
from typing import Any

from cli.context import Context
from cli.output import emit_json, say, warn, when
from domain.agreement import AGREEMENT_TEXT, AGREEMENT_VERSION, AgreementNotAccepted
from domain.services.agreement import accept_agreement, agreement_in_force
from tasks.messages import agreement_message

ACCEPT_COMMAND = 'avtorlm eula accept --by "Your Name"'


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the `eula` commands."""
    eula = commands.add_parser("eula", help="show or accept the Avtor license agreement")
    actions = eula.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser("show", parents=[common], help="show the agreement and who accepted it")
    show.set_defaults(run=show_agreement)
    accept = actions.add_parser(
        "accept",
        parents=[common],
        help="accept the agreement in force; --by NAME (required here) names who accepts it",
    )
    accept.set_defaults(run=accept_eula, usage=accept)


def show_agreement(arguments: argparse.Namespace, context: Context) -> int:
    """Print the agreement and whether it has been accepted."""
    acceptance = agreement_in_force(context.store())
    if context.json:
        emit_json(
            {"version": AGREEMENT_VERSION, "text": AGREEMENT_TEXT, "accepted": agreement_message(acceptance)}
        )
        return 0
    say(AGREEMENT_TEXT)
    if acceptance is None:
        say(f"Not accepted yet: accept it with `{ACCEPT_COMMAND}`.")
    else:
        say(f"Accepted by {acceptance.accepted_by} at {when(acceptance.accepted_at)}.")
    return 0


def accept_eula(arguments: argparse.Namespace, context: Context) -> int:
    """Record that the administrator named by --by accepts the agreement in force."""
    if arguments.by is None:
        arguments.usage.error("--by NAME is required: the name of who accepts the agreement")
    now = context.now()
    acceptance = accept_agreement(
        arguments.by, context.store(), now, context.settings.grace_period, actor=context.actor
    )
    if acceptance.accepted_at == now:
        message = f"The license agreement {acceptance.version} is accepted by {acceptance.accepted_by}."
    else:
        message = (
            f"The license agreement {acceptance.version} was already accepted by {acceptance.accepted_by} "
            f"at {when(acceptance.accepted_at)}: nothing was changed."
        )
    if context.json:
        emit_json({"ok": True, "message": message, "agreement": agreement_message(acceptance)})
    else:
        say(message)
    return 0


def require_acceptance(context: Context) -> None:
    """Refuse a changing command until the agreement in force is accepted."""
    if agreement_in_force(context.store()) is None:
        raise AgreementNotAccepted()


def explain_agreement_needed(refusal: AgreementNotAccepted, json: bool) -> None:
    """Show the agreement and how to accept it, in place of the command that needed it."""
    if json:
        emit_json(
            {
                "ok": False,
                "message": str(refusal),
                "agreement": {"version": AGREEMENT_VERSION, "text": AGREEMENT_TEXT},
                "accept_with": ACCEPT_COMMAND,
            }
        )
        return
    warn(f"{refusal}\n")
    warn(AGREEMENT_TEXT)
    warn(f"To accept it: {ACCEPT_COMMAND}")
