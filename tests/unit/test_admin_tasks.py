"""The admin tasks as Celery calls them: signatures, refusals, errors and retries; no worker, no store."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from celery import Celery
from sqlalchemy.exc import OperationalError

from config import current_settings
from domain.refusals import Refused
from tasks import admin
from tasks.admin import AdminTask
from tasks.sending import arguments_for_logs
from worker.app import max_retry_countdown

CHANGING_TASKS = [
    admin.accept_eula,
    admin.add_license,
    admin.refresh_license,
    admin.refresh_all,
    admin.remove_license,
    admin.add_user,
    admin.remove_user,
]
KEY = "AVTR-7Q2M-K9XD-4HFT-PL3C"


def a_task(body: Any) -> Any:
    """An admin task on an app of its own whose body is `body`."""
    app = Celery("test-admin-tasks", set_as_current=False)
    return app.task(name="avtor.admin.test", base=AdminTask)(body)


@pytest.mark.parametrize("task", CHANGING_TASKS, ids=lambda task: task.name)
def test_every_changing_task_needs_the_actor_its_caller_authenticated(task: Any) -> None:
    parameters = inspect.signature(task.run).parameters
    assert "requested_by" not in parameters
    assert parameters["actor"].default is inspect.Parameter.empty


def test_a_task_without_an_actor_is_refused_before_it_touches_anything() -> None:
    answer = admin.add_user("sitecore\\bob")
    assert answer["ok"] is False
    assert "The request's arguments are wrong" in answer["message"]
    assert "actor" in answer["message"]


@pytest.mark.parametrize("actor", ["", "   ", 42, "x" * 201])
def test_an_actor_that_names_nobody_is_refused(actor: object) -> None:
    answer = admin.add_user("sitecore\\bob", actor=actor)
    assert answer == {
        "ok": False,
        "message": "The request's arguments are wrong: the actor must name who asks, in 1 to 200 characters.",
    }


def test_tasks_name_a_license_by_its_id_and_only_adding_takes_a_key() -> None:
    for task in (admin.refresh_license, admin.remove_license):
        assert list(inspect.signature(task.run).parameters) == ["license_id", "actor"]
    assert "license_key" in inspect.signature(admin.add_license.run).parameters


def test_the_key_a_task_carries_is_masked_in_the_arguments_it_is_logged_with() -> None:
    shown = arguments_for_logs({"license_key": KEY, "actor": "ada (avtorlm)"})
    assert KEY not in shown
    assert shown == "{'license_key': '…PL3C', 'actor': 'ada (avtorlm)'}"


def test_arguments_that_do_not_fit_the_task_are_refused_with_a_message() -> None:
    def fine(username: str, actor: str) -> dict[str, Any]:
        return {"ok": True}

    task = a_task(fine)
    assert task("bob", actor="ada") == {"ok": True}
    for args, kwargs in [((), {"actor": "ada"}), (("bob",), {"actor": "ada", "key": "x"})]:
        answer = task(*args, **kwargs)
        assert answer["ok"] is False
        assert answer["message"].startswith("The request's arguments are wrong: ")


def test_a_type_error_inside_a_task_is_an_error_not_a_refusal() -> None:
    def broken(username: str, actor: str) -> dict[str, Any]:
        return {"ok": True, "seats": username + 1}  # type: ignore[operator]

    with pytest.raises(TypeError, match="can only concatenate str"):
        a_task(broken)("bob", actor="ada")


def test_a_refusal_inside_a_task_is_its_answer() -> None:
    def refusing(username: str, actor: str) -> dict[str, Any]:
        raise Refused(f"{username} holds no seat.")

    assert a_task(refusing)("bob", actor="ada") == {"ok": False, "message": "bob holds no seat."}


def test_a_store_hiccup_is_retried_by_celery_with_backoff_and_jitter_within_the_visibility_timeout() -> None:
    for task in [*CHANGING_TASKS, admin.status, admin.revalidate_due]:
        assert OperationalError in task.autoretry_for
        assert (task.retry_backoff, task.retry_jitter, task.max_retries) == (True, True, 5)
        assert 0 < task.retry_backoff_max <= max_retry_countdown(current_settings())
        # Celery wraps the body to retry it; the wrapper keeps the body's signature.
        assert task.run is not task._orig_run
