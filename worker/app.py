"""The Celery application: administration tasks on one queue, and the beat schedule.

Editors' starts do not go through Celery: hosts add them to a Redis stream that the
enrolment consumer reads (worker/enrolment_consumer.py). A Celery message names the
code it runs, so only trusted callers (the command line, the schedule) write to the
admin queue.
"""

from __future__ import annotations

import logging
import sys
from datetime import timedelta
from typing import Any

from celery import Celery, signals
from kombu.entity import Queue

from config import Settings, SettingsError, current_settings
from config.logs import configure_logging, log_json_lines
from config.settings import DEVELOPMENT_MODE_NOTICE
from worker import wiring
from worker.schedule import beat_schedule

ADMIN_QUEUE = "avtor.admin"

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> Celery:
    """The Celery application for `settings`."""
    app = Celery("avtor", include=["tasks.admin", "tasks.seats", "tasks.alerts"])
    app.conf.update(celery_configuration(settings))
    return app


def celery_configuration(settings: Settings) -> dict[str, object]:
    """Celery's settings, each with the reason it has its value."""
    visibility_timeout = settings.visibility_timeout.total_seconds()
    return {
        "broker_url": settings.redis_url.get_secret_value(),
        "result_backend": settings.redis_url.get_secret_value(),
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_queues": [Queue(ADMIN_QUEUE)],
        "task_default_queue": ADMIN_QUEUE,
        "task_routes": {"avtor.admin.*": {"queue": ADMIN_QUEUE}},
        # A message is acknowledged only after its task ended, so a worker that dies
        # mid-task loses nothing; the admin tasks are idempotent, so a second run is harmless.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # A task that raised has still been answered (its failure is the result): ack it.
        "task_acks_on_failure_or_timeout": True,
        # Unacknowledged messages of a worker that vanished come back after this long.
        # Every task here ends well within it (retry countdowns are capped below it).
        "broker_transport_options": {
            "visibility_timeout": visibility_timeout,
            "unacked_restore_interval": min(10.0, max(1.0, visibility_timeout / 4)),
        },
        # A result whose storing fails while Redis restarts is stored once Redis is back.
        "result_backend_always_retry": True,
        "result_backend_max_retries": 60,
        "result_backend_max_sleep_between_retries_ms": 1000,
        "worker_pool": settings.worker_pool,
        "worker_concurrency": settings.worker_concurrency,
        # Admin tasks can take seconds (the license service): take one at a time per slot.
        "worker_prefetch_multiplier": 1,
        # Explicit, as Celery 6 will require: keep retrying the broker at start-up too.
        "broker_connection_retry_on_startup": True,
        "broker_connection_retry": True,
        "broker_connection_max_retries": None,
        "result_expires": settings.result_expires,
        "result_extended": False,
        "task_track_started": False,
        "task_ignore_result": False,
        # Tasks are known by their names, never by a module path.
        "task_create_missing_queues": False,
        "worker_send_task_events": False,
        # Nothing asks the workers anything through remote control.
        "worker_enable_remote_control": False,
        "worker_hijack_root_logger": True,
        "timezone": "UTC",
        "enable_utc": True,
        "beat_schedule": beat_schedule(settings),
    }


def admin_run_budget(settings: Settings) -> timedelta:
    """How long a run of license checks may go on starting checks: half the visibility timeout.

    A task still running when the visibility timeout ends is handed out a second time;
    the checks begun within this budget (each bounded by the client's timeouts) end
    well before that.
    """
    return settings.visibility_timeout / 2


def max_retry_countdown(settings: Settings) -> float:
    """The longest a retry may wait: well within the broker's visibility timeout."""
    return min(settings.visibility_timeout.total_seconds() / 2, timedelta(minutes=5).total_seconds())


def _check_store_and_license_service_or_exit() -> None:
    try:
        wiring.check_store()
        # The workers and beat call the license service: without a key to verify it, they do not start.
        wiring.settings().trusted_public_key()
    except (*wiring.STORE_NOT_READY, SettingsError) as error:
        log.critical("%s", error)
        sys.exit(f"The Avtor License Manager cannot start: {error}")


def _celery_role() -> str:
    # Both the worker and beat send the logging signals; the command names which one this is.
    return "beat" if "beat" in sys.argv[1:] else "worker"


def log_json_from_the_start() -> None:
    """For `celery -A worker`: JSON lines from the first warning on, before Celery sets its logging up."""
    if wiring.settings().log_format == "json":
        configure_logging(_celery_role(), "json")
        logging.captureWarnings(True)


@signals.after_setup_logger.connect
def _log_json_lines(logger: logging.Logger, **_: Any) -> None:
    if wiring.settings().log_format == "json":
        log_json_lines(logger, _celery_role())


@signals.after_setup_task_logger.connect
def _log_task_json_lines(logger: logging.Logger, **_: Any) -> None:
    if wiring.settings().log_format == "json":
        log_json_lines(logger, _celery_role())


@signals.after_setup_logger.connect
def _say_development_mode_first(**_: Any) -> None:
    # Sent as soon as Celery's logging is set up, before the worker's or beat's first line.
    if wiring.settings().development_mode:
        log.warning("%s", DEVELOPMENT_MODE_NOTICE)


@signals.worker_init.connect
def _check_store_before_the_worker_starts(**_: Any) -> None:
    _check_store_and_license_service_or_exit()


@signals.beat_init.connect
def _check_store_before_beat_starts(**_: Any) -> None:
    _check_store_and_license_service_or_exit()


@signals.worker_process_init.connect
def _forget_the_parents_connections(**_: Any) -> None:
    wiring.forget_the_parents_connections()


def _load_settings() -> Settings:
    try:
        return current_settings()
    except SettingsError as error:
        sys.exit(str(error))


app = create_app(_load_settings())
