"""`avtorlm`: the administrator's command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from adapters.sql import StoreUnreachable, create_store_engine, describe_url, migrate
from config import SettingsError, load_settings

EXIT_DONE, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `avtorlm` command; return its exit code."""
    parser = argparse.ArgumentParser(
        prog="avtorlm", description="The Avtor License Manager's administrator tool."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("migrate", help="create or update the store's tables (safe to run again)")
    arguments = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(error, file=sys.stderr)
        return EXIT_USAGE
    assert arguments.command == "migrate"
    return _migrate(settings.store_url)


def _migrate(url: str) -> int:
    engine = create_store_engine(url)
    try:
        before, after = migrate(engine)
    except StoreUnreachable as error:
        print(error, file=sys.stderr)
        return EXIT_REFUSED
    finally:
        engine.dispose()
    where = describe_url(url)
    if before == after:
        print(f"The store at {where} is up to date (schema revision {after}).")
    else:
        print(f"The store at {where} is migrated from revision {before or 'none'} to {after}.")
    return EXIT_DONE


if __name__ == "__main__":
    sys.exit(main())
