"""The Celery application, its queues and the settings chosen for them.

Enrolment tasks take milliseconds and are idempotent (a repeated request never
takes a second seat), which is what every setting below leans on.
"""

from __future__ import annotations

import sys
from datetime import timedelta

from celery import Celery
from kombu.entity import Queue

from config import Settings, SettingsError, current_settings
from worker.schedule import beat_schedule

ENROLMENT_QUEUE = "avtor.enrolment"
ADMIN_QUEUE = "avtor.admin"
DEAD_LETTER_KEY = "avtor.dead-letter"


def create_app(settings: Settings) -> Celery:
    """The Celery application for `settings`."""
    app = Celery("avtor", include=["tasks.enrolment", "tasks.admin"])
    app.conf.update(celery_configuration(settings))
    return app


def celery_configuration(settings: Settings) -> dict[str, object]:
    """Celery's settings, each with the reason it has its value."""
    visibility_timeout = settings.visibility_timeout.total_seconds()
    return {
        "broker_url": settings.redis_url,
        # kombu's Redis transport, hardened so that no item on a queue can stop a worker.
        "broker_transport": "worker.transport:GuardedTransport",
        "result_backend": settings.redis_url,
        # Hosts in any language speak the contract with a Redis client: JSON, nothing else.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_protocol": 2,
        # Enrolment and administration never share a queue, so a hung license service
        # cannot delay an editor's start.
        "task_queues": [Queue(ENROLMENT_QUEUE), Queue(ADMIN_QUEUE)],
        "task_default_queue": ADMIN_QUEUE,
        "task_routes": {"avtor.enrol": {"queue": ENROLMENT_QUEUE}, "avtor.admin.*": {"queue": ADMIN_QUEUE}},
        # A message is acknowledged only after its decision is stored, so a worker that
        # dies mid-task loses nothing; the tasks are idempotent, so a second run is harmless.
        "task_acks_late": True,
        # With a process pool (`--pool prefork`), a pool process killed mid-task (SIGKILL,
        # out of memory) puts its message back at once instead of dropping it; poison
        # messages are stopped by the delivery count. A whole worker that dies leaves its
        # messages unacknowledged in Redis; they come back after the visibility timeout.
        "task_reject_on_worker_lost": True,
        # A task that raised has still been decided (its failure is the result): ack it.
        "task_acks_on_failure_or_timeout": True,
        # Unacknowledged messages of a worker that vanished entirely come back after this
        # long. Every task here ends well within it (retry countdowns are capped below it).
        "broker_transport_options": {
            "visibility_timeout": visibility_timeout,
            # Look for such messages every few seconds rather than every minute.
            "unacked_restore_interval": min(10.0, max(1.0, visibility_timeout / 4)),
            # No message priorities: one list per queue, so that a worker on one queue
            # takes each message atomically (worker/transport.py).
            "priority_steps": [0],
        },
        # A decision whose storing fails while Redis restarts is stored once Redis is back
        # (about a minute of retries) rather than lost; the task is idempotent meanwhile.
        "result_backend_transport_options": {
            "retry_policy": {
                "max_retries": 60,
                "interval_start": 0.1,
                "interval_step": 0.5,
                "interval_max": 1.0,
            }
        },
        "result_backend_always_retry": True,
        "result_backend_max_retries": 60,
        "result_backend_max_sleep_between_retries_ms": 1000,
        # Threads, not processes, by default (AVTOR_WORKER_POOL): with a thread pool, the
        # enrolment messages a worker process receives are decided in batches by its
        # enrolment stream (worker/enrolment_stream.py); the pool runs the admin tasks and
        # whatever the stream hands back. Scale with more worker processes (nodes), one or
        # two per core.
        "worker_pool": settings.worker_pool,
        "worker_concurrency": settings.worker_concurrency,
        # Millisecond tasks: a couple of messages in hand per thread keep the pool busy
        # without hoarding messages another worker could take (and that would wait for the
        # visibility timeout if this worker died).
        "worker_prefetch_multiplier": 2,
        # Explicit, as Celery 6 will require: keep retrying the broker at start-up too.
        "broker_connection_retry_on_startup": True,
        "broker_connection_retry": True,
        "broker_connection_max_retries": None,
        # Hosts read a decision within seconds; an hour is ample, and Redis stays small.
        "result_expires": settings.result_expires,
        "result_extended": False,
        "task_track_started": False,
        "task_ignore_result": False,
        # Tasks are known by the names of the contract, never by a module path.
        "task_create_missing_queues": False,
        "worker_send_task_events": False,
        "worker_hijack_root_logger": True,
        "worker_consumer": "worker.consumer:GuardedConsumer",
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


def _load_settings() -> Settings:
    try:
        return current_settings()
    except SettingsError as error:
        sys.exit(str(error))


app = create_app(_load_settings())
