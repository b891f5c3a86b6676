"""Alembic's entry point: runs the migrations over the connection it is given."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, Engine

from adapters.sql.tables import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate over the caller's connection, or a new one from its engine."""
    connection = context.config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    engine = context.config.attributes.get("engine")
    if not isinstance(engine, Engine):
        raise RuntimeError("Run migrations with `avtorlm migrate`, which knows the store to use.")
    with engine.begin() as fresh:
        _run(fresh)


if context.is_offline_mode():
    raise RuntimeError("Offline (SQL script) migrations are not supported: run `avtorlm migrate`.")
run_migrations_online()
