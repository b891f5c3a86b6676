"""Bringing the store's schema up to date, and refusing to run against an old one."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from adapters.sql.engine import SQLITE_WRITE_OPTION
from config import hide_password

MIGRATIONS = Path(__file__).with_name("migrations")


class SchemaOutdated(Exception):
    """The store's schema is not the one this version of the manager needs."""


class StoreUnreachable(Exception):
    """The store could not be opened."""


def alembic_config(engine: Engine) -> Config:
    """Alembic's configuration for this project's migrations, bound to `engine`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    """The schema revision this version of the manager needs."""
    head = ScriptDirectory.from_config(_script_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the store is at, or None for an empty store."""
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except OperationalError as error:
        raise StoreUnreachable(
            f"The store at {_described(engine)} cannot be opened: {error.orig}. "
            "Check AVTOR_DATABASE_URL and that the database server is running."
        ) from None


def migrate(engine: Engine) -> tuple[str | None, str]:
    """Apply every migration the store lacks; return the revisions before and after."""
    before = current_revision(engine)
    with engine.connect() as connection:
        # On SQLite, hold the write lock for the whole upgrade so two migrators cannot interleave.
        connection.execution_options(**{SQLITE_WRITE_OPTION: True})
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        connection.commit()
    return before, head_revision()


def check_schema(engine: Engine) -> None:
    """Raise SchemaOutdated unless the store is at the revision this version needs."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    where = _described(engine)
    if current is None:
        raise SchemaOutdated(
            f"The store at {where} has no Avtor tables yet: run `avtorlm migrate` to create them."
        )
    known = {script.revision for script in ScriptDirectory.from_config(_script_config()).walk_revisions()}
    if current not in known:
        raise SchemaOutdated(
            f"The store at {where} is at schema revision {current}, which this version of the manager "
            "does not know: it was written by a newer version. Run that version, or restore a backup."
        )
    raise SchemaOutdated(
        f"The store at {where} is at schema revision {current}, but this version needs {head}: "
        "run `avtorlm migrate` to bring it up to date."
    )


def _script_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _described(engine: Engine) -> str:
    return hide_password(engine.url.render_as_string(hide_password=False))
