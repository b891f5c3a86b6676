"""Stores for the tests: a fresh SQLite file, or a PostgreSQL database emptied for each test."""

from __future__ import annotations

from sqlalchemy import Engine, text

from adapters.sql import create_store_engine, migrate

_TABLES = (
    "seats",
    "licenses",
    "audit_events",
    "agreement_acceptances",
    "console_sessions",
    "administrators",
    "api_tokens",
    "sign_in_failures",
    "open_alerts",
    "notice_channels",
    "notice_deliveries",
)


def migrated_engine(url: str) -> Engine:
    """An engine on `url` with the schema brought up to date."""
    engine = create_store_engine(url)
    migrate(engine)
    return engine


def empty_store(engine: Engine) -> None:
    """Remove everything the previous test left, keeping the schema and the installation."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text(f"TRUNCATE {', '.join(_TABLES)} RESTART IDENTITY"))
        else:
            for table in _TABLES:
                connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608
        connection.execute(text("UPDATE installation SET seats_in_use = 0, licenses_version = 0"))
