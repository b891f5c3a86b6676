import pytest

from config import load_settings
from worker.app import ADMIN_QUEUE, create_app
from worker.schedule import EVALUATE_ALERTS, REVALIDATE_DUE


def test_beat_ticks_at_the_configured_interval_and_a_late_tick_expires() -> None:
    app = create_app(load_settings(revalidate_tick="5s"))
    entry = app.conf.beat_schedule["revalidate-due-licenses"]
    assert (entry["task"], entry["schedule"], entry["options"]["expires"]) == (REVALIDATE_DUE, 5.0, 5.0)


def test_beat_evaluates_the_alerts_every_alert_tick() -> None:
    app = create_app(load_settings(alert_tick="2s"))
    entry = app.conf.beat_schedule["evaluate-alerts"]
    assert (entry["task"], entry["schedule"], entry["options"]["expires"]) == (EVALUATE_ALERTS, 2.0, 2.0)


@pytest.mark.parametrize(
    "task",
    [
        "avtor.admin.add_license",
        "avtor.admin.refresh_license",
        "avtor.admin.refresh_all",
        REVALIDATE_DUE,
        EVALUATE_ALERTS,
        "avtor.admin.deliver_notice",
    ],
)
def test_license_tasks_go_to_the_admin_queue_never_the_enrolment_queue(task: str) -> None:
    app = create_app(load_settings())
    assert app.amqp.router.route({}, task)["queue"].name == ADMIN_QUEUE
