"""The Celery settings the admin tasks' guarantees rest on, as the worker really gets them."""

from datetime import timedelta

from config import Settings
from worker.app import app, celery_configuration, max_retry_countdown


def test_the_worker_acknowledges_late_and_requeues_what_a_dead_process_held() -> None:
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.broker_connection_retry_on_startup is True
    assert app.conf.accept_content == ["json"] and app.conf.task_serializer == "json"
    assert app.conf.task_create_missing_queues is False
    assert {queue.name for queue in app.conf.task_queues} == {"avtor.admin"}
    # Nothing may ask a worker to do anything but run the admin tasks it knows.
    assert app.conf.worker_enable_remote_control is False


def test_timeouts_and_expiry_follow_the_settings() -> None:
    settings = Settings(visibility_timeout=timedelta(minutes=2), result_expires=timedelta(minutes=30))
    configuration = celery_configuration(settings)
    assert configuration["broker_transport_options"] == {
        "visibility_timeout": 120.0,
        "unacked_restore_interval": 10.0,
    }
    assert configuration["result_expires"] == timedelta(minutes=30)


def test_no_retry_waits_as_long_as_the_visibility_timeout() -> None:
    for minutes in (1, 5, 60):
        settings = Settings(visibility_timeout=timedelta(minutes=minutes))
        assert 0 < max_retry_countdown(settings) < settings.visibility_timeout.total_seconds()
