"""`avtorlm token create|list|revoke`: bearer tokens of the HTTP API's clients."""

from __future__ import annotations

import argparse
from typing import Any

from adapters.sql.access import SqlAccess
from cli.context import Context
from cli.output import emit_json, instant, say, table, warn, when
from domain.services.access import create_token, list_tokens, revoke_token


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the `token` commands."""
    token = commands.add_parser("token", help="bearer tokens for clients of the HTTP API")
    actions = token.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser("create", parents=[common], help="create a token; it is shown once")
    create.add_argument("name", metavar="NAME", help="who uses it, e.g. the CMS; named in the audit log")
    create.set_defaults(run=create_api_token)

    listing = actions.add_parser("list", parents=[common], help="the tokens (never their secrets)")
    listing.set_defaults(run=list_api_tokens)

    revoke = actions.add_parser("revoke", parents=[common], help="revoke a token at once")
    revoke.add_argument("name", metavar="NAME")
    revoke.set_defaults(run=revoke_api_token)


def create_api_token(arguments: argparse.Namespace, context: Context) -> int:
    """Create a token and print it, once."""
    made = create_token(arguments.name, context.actor, SqlAccess(context.store().engine), context.now())
    message = (
        f"The token {made.token.name!r} is created. It is shown only now: keep it where its client reads "
        "it, and send it as `Authorization: Bearer <token>`."
    )
    if context.json:
        emit_json({"ok": True, "message": message, "name": made.token.name, "token": made.secret})
        return 0
    warn(message)
    say(made.secret)
    return 0


def list_api_tokens(arguments: argparse.Namespace, context: Context) -> int:
    """Print the tokens."""
    found = list_tokens(SqlAccess(context.store().engine))
    if context.json:
        emit_json(
            {
                "tokens": [
                    {
                        "name": token.name,
                        "token": token.shown,
                        "created_at": instant(token.created_at),
                        "created_by": token.created_by,
                        "last_used_at": instant(token.last_used_at),
                    }
                    for token in found
                ]
            }
        )
        return 0
    if not found:
        say("There is no API token: create one with `avtorlm token create NAME`.")
        return 0
    rows = [[t.name, t.shown, when(t.created_at), t.created_by, when(t.last_used_at)] for t in found]
    say(table(["NAME", "TOKEN", "CREATED", "BY", "LAST USED"], rows))
    return 0


def revoke_api_token(arguments: argparse.Namespace, context: Context) -> int:
    """Revoke a token."""
    name = revoke_token(arguments.name, SqlAccess(context.store().engine))
    message = f"The token {name!r} is revoked: requests bearing it are refused from now on."
    if context.json:
        emit_json({"ok": True, "message": message})
    else:
        say(message)
    return 0
