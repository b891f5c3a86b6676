"""`avtorlm migrate`: create or update the store's tables."""

from __future__ import annotations

import argparse
from typing import Any

from adapters.sql import create_store_engine, migrate
from cli.context import Context
from cli.output import say


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the `migrate` command."""
    command = commands.add_parser("migrate", help="create or update the store's tables (safe to run again)")
    command.set_defaults(run=migrate_store, json=False, show_keys=False)


def migrate_store(arguments: argparse.Namespace, context: Context) -> int:
    """Apply the migrations the store lacks; say from which revision to which."""
    url = context.settings.store_url
    engine = create_store_engine(url.get_secret_value())
    try:
        before, after = migrate(engine)
    finally:
        engine.dispose()
    where = str(url)
    if before == after:
        say(f"The store at {where} is up to date (schema revision {after}).")
    else:
        say(f"The store at {where} is migrated from revision {before or 'none'} to {after}.")
    return 0
