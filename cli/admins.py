"""`avtorlm admin add|list|remove|set-password`: who may sign in to the console."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from adapters.sql.access import SqlAccess
from cli.context import Context
from cli.output import emit_json, instant, say, table, when
from domain.refusals import Refused
from domain.services.access import add_administrator, list_administrators, remove_administrator, set_password


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the `admin` commands."""
    admin = commands.add_parser("admin", help="the administrators who may sign in to the console")
    actions = admin.add_subparsers(dest="action", required=True, metavar="ACTION")

    add = actions.add_parser("add", parents=[common], help="create an administrator")
    add.add_argument("name", metavar="NAME", help="the name to sign in with")
    _password_source(add)
    add.set_defaults(run=add_admin)

    listing = actions.add_parser("list", parents=[common], help="the administrators")
    listing.set_defaults(run=list_admins)

    remove = actions.add_parser(
        "remove", parents=[common], help="remove an administrator; their sessions end"
    )
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(run=remove_admin)

    change = actions.add_parser(
        "set-password", parents=[common], help="give an administrator a new password; their sessions end"
    )
    change.add_argument("name", metavar="NAME")
    _password_source(change)
    change.set_defaults(run=change_password)


def add_admin(arguments: argparse.Namespace, context: Context) -> int:
    """Create an administrator with the password read from stdin or typed twice."""
    access = SqlAccess(context.store().engine)
    password = _read_password(arguments)
    from adapters.passwords import Argon2Passwords  # argon2 is loaded only where passwords are hashed

    made = add_administrator(
        arguments.name, password, context.actor, access, Argon2Passwords(), context.now()
    )
    return _done(context, f"The administrator {made.name} is added: they can sign in to the console now.")


def list_admins(arguments: argparse.Namespace, context: Context) -> int:
    """Print the administrators."""
    found = list_administrators(SqlAccess(context.store().engine))
    if context.json:
        emit_json(
            {
                "administrators": [
                    {
                        "name": admin.name,
                        "created_at": instant(admin.created_at),
                        "created_by": admin.created_by,
                        "password_changed_at": instant(admin.password_changed_at),
                    }
                    for admin in found
                ]
            }
        )
        return 0
    if not found:
        say("There is no administrator yet: add one with `avtorlm admin add NAME --password-stdin`.")
        return 0
    rows = [[a.name, when(a.created_at), a.created_by, when(a.password_changed_at)] for a in found]
    say(table(["NAME", "ADDED", "BY", "PASSWORD SET"], rows))
    return 0


def remove_admin(arguments: argparse.Namespace, context: Context) -> int:
    """Remove an administrator."""
    name = remove_administrator(arguments.name, SqlAccess(context.store().engine))
    return _done(context, f"The administrator {name} is removed; their sessions have ended.")


def change_password(arguments: argparse.Namespace, context: Context) -> int:
    """Set a new password."""
    access = SqlAccess(context.store().engine)
    password = _read_password(arguments)
    from adapters.passwords import Argon2Passwords

    name = set_password(arguments.name, password, access, Argon2Passwords(), context.now())
    return _done(context, f"The password of {name} is changed; their sessions have ended.")


def _password_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (its first line); otherwise it is asked for twice",
    )


def _read_password(arguments: argparse.Namespace) -> str:
    """The password from stdin's first line, or typed twice at the terminal."""
    if arguments.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise Refused("Give the password on standard input with --password-stdin, or run this at a terminal.")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise Refused("The two passwords differ: nothing was changed. Try again.")
    return first


def _done(context: Context, message: str) -> int:
    if context.json:
        emit_json({"ok": True, "message": message})
    else:
        say(message)
    return 0
