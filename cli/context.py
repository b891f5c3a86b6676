"""What every command works with: the settings, the store, the license service, who is acting."""

from __future__ import annotations

import argparse
import os
import pwd
from datetime import datetime
from json import dumps
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from adapters.sql import SqlStore, check_schema, create_store_engine
from cli.output import warn
from config import Settings
from config.settings import DEVELOPMENT_MODE_NOTICE
from domain.moments import utc_now
from domain.refusals import Refused

if TYPE_CHECKING:
    from adapters.license_service import HttpLicenseService

# The name given with --by, quoted after the login name, fits the audit log's actor column.
MAX_NAME_LENGTH = 100


class Context:
    """One command's view of the installation; the store is opened, and checked, on first use."""

    def __init__(
        self, settings: Settings, json: bool = False, show_keys: bool = False, by: str | None = None
    ) -> None:
        self.settings = settings
        self.json = json
        self.show_keys = show_keys
        self.by = by
        self._store: SqlStore | None = None

    @property
    def actor(self) -> str:
        """Who the audit log names for this command's changes: the login, and the name given with --by.

        `alice (avtorlm)`, or `alice (avtorlm) for "Jane Admin"`: the login is the operating
        system's user of this process, which no environment variable can change; the name
        after `for` is what that login said with --by, quoted.
        """
        actor = f"{login_name()} (avtorlm)"
        if self.by:
            actor += f" for {dumps(self.by, ensure_ascii=False)}"
        return actor

    def now(self) -> datetime:
        """The current instant, in UTC."""
        return utc_now()

    def store(self) -> SqlStore:
        """The store, once it is known to exist and to be at the schema this version needs."""
        if self._store is None:
            url = self.settings.store_url.get_secret_value()
            _refuse_missing_sqlite_file(url)
            engine = create_store_engine(url)
            try:
                check_schema(engine)
            except BaseException:
                engine.dispose()
                raise
            self._store = SqlStore(engine)
        return self._store

    def trusted_public_key(self) -> str:
        """The key the license service's answers are verified with, for a command that calls the service.

        Raises SettingsError, naming the variable to set, when there is none; in development
        mode, says so first.
        """
        key = self.settings.trusted_public_key()
        if self.settings.development_mode:
            warn(DEVELOPMENT_MODE_NOTICE)
        return key

    def license_service(self) -> HttpLicenseService:
        """The vendor's license service, as the workers reach it."""
        # Imported here: only adding a key needs HTTP and signatures, and they slow every start.
        from adapters.license_service import HttpLicenseService

        settings = self.settings
        return HttpLicenseService(
            settings.license_server_url,
            self.trusted_public_key(),
            connect_timeout=settings.license_server_connect_timeout.total_seconds(),
            read_timeout=settings.license_server_timeout.total_seconds(),
            attempts=settings.license_server_attempts,
        )

    def close(self) -> None:
        """Release the store's connections."""
        if self._store is not None:
            self._store.engine.dispose()
            self._store = None


def login_name() -> str:
    """The operating system's name of the user this process runs as (not $LOGNAME or $USER)."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        # A container may run as a user id the password database does not know.
        return f"uid {uid}"


def person_name(text: str) -> str:
    """Read --by: a name of 1 to 100 printable characters."""
    name = text.strip()
    if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a name of 1 to {MAX_NAME_LENGTH} printable characters"
        )
    return name


def _refuse_missing_sqlite_file(url: str) -> None:
    # Opening a SQLite file creates it: a mistyped data folder would silently get an empty store.
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return
    if not Path(parsed.database).exists():
        raise Refused(
            f"There is no store at {parsed.database} yet: run `avtorlm migrate` to create it, "
            "or point AVTOR_DATA_DIR or AVTOR_DATABASE_URL at the store the workers use."
        )
