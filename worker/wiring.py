"""What every worker process needs, made once per process: settings, store, license service.

The enrolment consumer and the Celery worker share it; nothing here imports Celery.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from adapters.license_service import HttpLicenseService
from adapters.sql import SchemaOutdated, SqlStore, StoreUnreachable, check_schema, create_store_engine
from config import Settings, current_settings
from domain.moments import utc_now
from domain.services.revalidation import RevalidationRules

_lock = threading.Lock()
_store: SqlStore | None = None
_license_service: HttpLicenseService | None = None

# A claimed check may take as long as the client's longest validation; its lease outlasts that.
LEASE_MARGIN = timedelta(minutes=1)


def settings() -> Settings:
    """The process's settings."""
    return current_settings()


def store() -> SqlStore:
    """The process's store: one engine and pool, made on first use after the fork."""
    global _store
    if _store is None:
        with _lock:
            if _store is None:
                _store = SqlStore(create_store_engine(settings().store_url.get_secret_value()))
    return _store


def enrolment_store() -> SqlStore:
    """The enrolment consumer's store: on PostgreSQL, no lock or statement waits past its timeouts."""
    current = settings()
    engine = create_store_engine(
        current.store_url.get_secret_value(),
        lock_timeout=current.store_lock_timeout,
        statement_timeout=current.store_statement_timeout,
    )
    return SqlStore(engine)


def license_service() -> HttpLicenseService:
    """The process's license service client: one session, made on first use after the fork."""
    global _license_service
    if _license_service is None:
        with _lock:
            if _license_service is None:
                current = settings()
                _license_service = HttpLicenseService(
                    current.license_server_url,
                    current.trusted_public_key(),
                    connect_timeout=current.license_server_connect_timeout.total_seconds(),
                    read_timeout=current.license_server_timeout.total_seconds(),
                    attempts=current.license_server_attempts,
                )
    return _license_service


def revalidation_rules() -> RevalidationRules:
    """How often licenses are re-validated, the lease of one check, and the grace period."""
    current = settings()
    return RevalidationRules(
        revalidate_every=current.revalidate_every,
        lease=license_service().longest_validation + LEASE_MARGIN,
        grace_period=current.grace_period,
    )


def now() -> datetime:
    """The current instant, in UTC."""
    return utc_now()


STORE_NOT_READY = (SchemaOutdated, StoreUnreachable)


def check_store() -> None:
    """Raise StoreNotReady's errors, which say what to do, if the store cannot be used."""
    engine = create_store_engine(settings().store_url.get_secret_value())
    try:
        check_schema(engine)
    finally:
        engine.dispose()


def forget_the_parents_connections() -> None:
    """In a forked pool process: never use the connections of the parent."""
    global _store, _license_service
    if _store is not None:
        _store.engine.dispose(close=False)
    _store = None
    _license_service = None
