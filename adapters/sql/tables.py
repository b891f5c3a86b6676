"""The store's tables, in SQLAlchemy Core; Alembic migrations create them."""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    any_,
    bindparam,
    false,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import TypeEngine


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC instant, also on SQLite (which keeps no time zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored: every instant must be UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class NameList(TypeDecorator[Collection[str]]):
    """A list of names bound as one parameter: an array on PostgreSQL, JSON text on SQLite."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(ARRAY(String) if dialect.name == "postgresql" else String())

    def process_bind_param(self, value: Collection[str] | None, dialect: Dialect) -> Any:
        names = list(value or ())
        return names if dialect.name == "postgresql" else json.dumps(names)


def one_of(column: ColumnElement[str], key: str, dialect: str) -> ColumnElement[bool]:
    """`column` is one of the names bound to `key`: one parameter and one SQL text whatever their number."""
    names = bindparam(key, type_=NameList())
    if dialect == "postgresql":
        return column == any_(names)
    return column.in_(select(func.json_each(names).table_valued("value")))


# Event ids are BIGINT on PostgreSQL, but SQLite only auto-increments INTEGER PRIMARY KEY.
EventId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# One row. Every writer locks it first, which serializes all changes to seats and
# licenses; it also counts the seats, so that nothing has to count rows.
installation = Table(
    "installation",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("installation_id", String(36), nullable=False),
    Column("seats_in_use", Integer, nullable=False),
    Column("licenses_version", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

licenses = Table(
    "licenses",
    metadata,
    Column("key", String(128), primary_key=True),
    # Tasks and messages name a license by this id, never by its key.
    Column("id", String(36), nullable=False, unique=True),
    Column("added_at", UTCDateTime, nullable=False),
    Column("seats", Integer, nullable=False),
    Column("service_status", String(16), nullable=True),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("customer", String(200), nullable=False),
    Column("verified_at", UTCDateTime, nullable=True),
    Column("latest_issued_at", UTCDateTime, nullable=True),
    Column("last_checked_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("next_check_at", UTCDateTime, nullable=True, index=True),
    Column("failed_checks", Integer, nullable=False),
)

seats = Table(
    "seats",
    metadata,
    Column("username", String(256), primary_key=True),
    Column("display_name", String(256), nullable=False),
    Column("assignment", String(16), nullable=False),
    Column("assigned_at", UTCDateTime, nullable=False),
    Column("assigned_by", String(200), nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=True),
    Column("request_id", String(200), nullable=True),
    Column("reserved", Boolean, nullable=False, server_default=false()),
    Index("ix_seats_assigned_at", "assigned_at", "username"),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("subject", String(256), nullable=False),
    Column("outcome", String(32), nullable=True),
    Column("request_id", String(200), nullable=True, unique=True),
    Column("seats_total_before", Integer, nullable=False),
    Column("seats_total_after", Integer, nullable=False),
    Column("seats_used_before", Integer, nullable=False),
    Column("seats_used_after", Integer, nullable=False),
    Column("detail", Text, nullable=False),
    Index("ix_audit_events_at", "at"),
    Index("ix_audit_events_kind_at", "kind", "at"),
)

agreement_acceptances = Table(
    "agreement_acceptances",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version", String(32), nullable=False),
    Column("accepted_by", String(200), nullable=False),
    Column("accepted_at", UTCDateTime, nullable=False),
)

# Who may use the console and the HTTP API. None of these tables is touched by the seat
# ledger's transactions: signing in never waits for the ledger's lock.
administrators = Table(
    "administrators",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("password_hash", String(512), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("password_changed_at", UTCDateTime, nullable=False),
)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("administrator", String(100), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False, index=True),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("digest", String(64), nullable=False, unique=True),
    Column("shown", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
)

sign_in_failures = Table(
    "sign_in_failures",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("address", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False, index=True),
    Index("ix_sign_in_failures_name_at", "name", "at"),
    Index("ix_sign_in_failures_address_at", "address", "at"),
)

# Alerts raised and not yet resolved: one row per condition (kind and subject). Written
# only under the installation row's lock, so several beats never raise one twice.
open_alerts = Table(
    "open_alerts",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("threshold", Integer, nullable=False),
    Column("summary", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("raised_at", UTCDateTime, nullable=False),
)

# Where notices go: webhooks and SMTP targets. The secret (a webhook's signing key, an
# SMTP password) is never shown: listings and logs show it masked.
notice_channels = Table(
    "notice_channels",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("target", String(2000), nullable=False),
    Column("options", Text, nullable=False),
    Column("secret", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# Every attempt to deliver a notice to a channel, successful or not.
notice_deliveries = Table(
    "notice_deliveries",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("notice_id", String(36), nullable=False),
    Column("channel", String(100), nullable=False),
    Column("alert_key", String(300), nullable=False),
    Column("notice_kind", String(16), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False, index=True),
    Column("outcome", String(16), nullable=False),
    Column("detail", Text, nullable=False),
)
