"""The seat ledger in a SQL database: SQLite embedded, PostgreSQL shared."""

from adapters.sql.engine import TRANSIENT_STORE_ERRORS, create_store_engine
from adapters.sql.schema import SchemaOutdated, StoreUnreachable, check_schema, migrate
from adapters.sql.store import SqlStore

__all__ = [
    "TRANSIENT_STORE_ERRORS",
    "SchemaOutdated",
    "SqlStore",
    "StoreUnreachable",
    "check_schema",
    "create_store_engine",
    "migrate",
]
