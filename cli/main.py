"""`avtorlm`: the administrator's command line.

Exit codes: 0 done, 1 refused or impossible (the message says why and what to
do), 2 wrong usage or settings.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from sqlalchemy.exc import SQLAlchemyError

from adapters.sql import SchemaOutdated, StoreUnreachable
from cli import (
    admins,
    agreement,
    enrolment,
    events,
    licenses,
    metrics,
    migrate,
    notify,
    report,
    serve,
    status,
    tokens,
    users,
)
from cli.context import Context, person_name
from cli.output import emit_json, warn
from cli.workers import WorkersUnavailable
from config import SettingsError, load_settings
from config.logs import configure_logging
from config.settings import running_system_env_file
from domain.agreement import AgreementNotAccepted
from domain.refusals import Refused

EXIT_DONE, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `avtorlm` command; return its exit code."""
    arguments = parser().parse_args(argv)
    running = running_system_env_file()
    try:
        settings = load_settings(running)
    except SettingsError as error:
        warn(str(error))
        return EXIT_USAGE
    # Log records (rare here: the command's answers are printed) go to stderr, as text or JSON lines.
    configure_logging("cli", settings.log_format, logging.WARNING, text_format="%(message)s")
    if running is not None and not arguments.json:
        warn(f"Using the system that scripts/run runs, as {running} describes it (no AVTOR_REDIS_URL set).")
    context = Context(
        settings, json=arguments.json, show_keys=arguments.show_keys, by=getattr(arguments, "by", None)
    )
    try:
        return int(arguments.run(arguments, context))
    except SettingsError as error:
        # A setting only some commands need (the license service's key) is missing or wrong.
        _refuse(str(error), context.json)
        return EXIT_USAGE
    except AgreementNotAccepted as refusal:
        agreement.explain_agreement_needed(refusal, context.json)
    except (Refused, StoreUnreachable, SchemaOutdated, WorkersUnavailable) as refusal:
        _refuse(str(refusal), context.json)
    except SQLAlchemyError as error:
        _refuse(
            f"The store at {settings.store_url} failed: {error.__class__.__name__}: "
            f"{getattr(error, 'orig', None) or error}. Check that the database server runs and "
            "AVTOR_DATABASE_URL, then try again; nothing was changed.",
            context.json,
        )
    finally:
        context.close()
    return EXIT_REFUSED


def parser() -> argparse.ArgumentParser:
    """The command line's grammar."""
    main_parser = CommandParser(
        prog="avtorlm",
        description="The Avtor License Manager's administrator tool. Settings come from the AVTOR_* "
        "environment variables (see README.md).",
        epilog="Exit codes: 0 done, 1 refused (the message says why), 2 wrong usage.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="answer in JSON, for scripts")
    common.add_argument("--show-keys", action="store_true", help="show license keys in full")
    common.add_argument(
        "--by",
        type=person_name,
        metavar="NAME",
        help="who makes this change, recorded in the audit log beside the login name",
    )
    commands = main_parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (
        status,
        licenses,
        users,
        events,
        report,
        agreement,
        enrolment,
        migrate,
        admins,
        tokens,
        notify,
        serve,
        metrics,
    ):
        module.register(commands, common)
    return main_parser


class CommandParser(argparse.ArgumentParser):
    """argparse's parser, which also suggests the command meant when one is mistyped."""

    def error(self, message: str) -> NoReturn:
        """Exit 2 with the message, and the nearest valid choice when a choice was mistyped."""
        wrong = _INVALID_CHOICE.search(message)
        if wrong is not None:
            choices = re.findall(r"'([^']*)'", wrong.group("choices"))
            near = difflib.get_close_matches(wrong.group("given"), choices, n=1, cutoff=0.6)
            if near:
                message = f"{message}\nDid you mean {near[0]!r}?"
        super().error(message)


_INVALID_CHOICE = re.compile(r"invalid choice: '(?P<given>[^']*)'.*?\(choose from (?P<choices>.*)\)")


def _refuse(message: str, json: bool) -> None:
    if json:
        emit_json({"ok": False, "message": message})
    else:
        warn(message)


if __name__ == "__main__":
    sys.exit(main())
