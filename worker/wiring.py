"""What every worker process needs, made once per process: settings, store, license service.

The enrolment consumer and the Celery worker share it; nothing here imports Celery.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import redis
import requests

from adapters.license_service import HttpLicenseService
from adapters.notifications import send_email, send_webhook
from adapters.sql import SchemaOutdated, SqlStore, StoreUnreachable, check_schema, create_store_engine
from adapters.sql.notices import SqlNotices
from config import Settings, current_settings
from domain.alerts import EnrolmentBacklog
from domain.moments import utc_now
from domain.notices import Channel, ChannelKind
from domain.services.revalidation import RevalidationRules
from worker.requests_stream import read_stream_state

_lock = threading.Lock()
_store: SqlStore | None = None
_license_service: HttpLicenseService | None = None
_webhooks: requests.Session | None = None

# An enrolment consumer that has not read the stream for this long is taken for gone.
CONSUMER_GONE_AFTER_MS = 60_000

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


def notices() -> SqlNotices:
    """The notice channels and delivery attempts, in the process's store."""
    return SqlNotices(store().engine)


def _webhook_session() -> requests.Session:
    global _webhooks
    if _webhooks is None:
        with _lock:
            if _webhooks is None:
                _webhooks = requests.Session()
    return _webhooks


def _send_webhook(channel: Channel, document: dict[str, Any]) -> str:
    return send_webhook(_webhook_session(), channel.target, channel.secret, document, now())


def notice_senders() -> dict[ChannelKind, Callable[[Channel, dict[str, Any]], str]]:
    """How a notice reaches each kind of channel."""
    return {ChannelKind.WEBHOOK: _send_webhook, ChannelKind.EMAIL: send_email}


def enrolment_backlog() -> EnrolmentBacklog:
    """Entries waiting in the enrolment stream, and how many consumers read it lately."""
    with redis.Redis.from_url(settings().redis_url.get_secret_value()) as client:
        state = read_stream_state(client)
    oldest = None if state.oldest_age_ms is None else timedelta(milliseconds=state.oldest_age_ms)
    return EnrolmentBacklog(
        waiting=state.waiting,
        consumers_alive=len(state.alive(CONSUMER_GONE_AFTER_MS)),
        oldest_age=oldest,
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
    global _store, _license_service, _webhooks
    if _store is not None:
        _store.engine.dispose(close=False)
    _store = None
    _license_service = None
    _webhooks = None
