"""`avtor.admin.*`: what the administrator's screen does.

Each task returns the new state, or `{"ok": false, "message": ...}` when the
operation is refused; nothing is changed by a refused operation.

Only trusted callers (the command line, the schedule) can write to the admin queue. A
task that changes something takes `actor`, who its caller authenticated, for the audit
log; there is no default. Tasks name a license by its id: only `add_license` carries a
key, and its senders show it masked in the message's headers (`tasks.sending`).
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from celery import Task

from config import current_settings
from domain.licenses import masked_key
from domain.refusals import Refused
from domain.services.agreement import accept_agreement
from domain.services.licenses import add_license as add_license_
from domain.services.licenses import license_key, seats_until
from domain.services.licenses import remove_license as remove_license_
from domain.services.revalidation import refresh_all_licenses, revalidate_due_licenses
from domain.services.revalidation import refresh_license as refresh_license_
from domain.services.status import describe_ledger
from domain.services.users import add_user as add_user_
from domain.services.users import remove_user as remove_user_
from tasks.messages import (
    agreement_message,
    counts_message,
    done,
    license_message,
    refused,
    revalidation_message,
    revalidations_summary,
    status_message,
)
from tasks.retries import TRANSIENT_STORE_ERRORS, longest_retry_wait
from worker import wiring
from worker.app import admin_run_budget, app

log = logging.getLogger(__name__)

MAX_ACTOR_LENGTH = 200


class AdminTask(Task):  # type: ignore[misc]
    """An admin task: a refusal is an answer, a store hiccup is retried, a bug is an error."""

    abstract = True
    # A store briefly unreachable or busy (a restart, a lock held too long) is tried again
    # after 1 s, 2 s, 4 s ... (full jitter), each wait well within the visibility timeout.
    autoretry_for = TRANSIENT_STORE_ERRORS
    max_retries = 5
    retry_backoff = True
    retry_backoff_max = longest_retry_wait(current_settings())
    retry_jitter = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        wrong = wrong_arguments(self.run, args, kwargs)
        if wrong is not None:
            return refused(f"The request's arguments are wrong: {wrong}.")
        try:
            return super().__call__(*args, **kwargs)
        except Refused as refusal:
            return refused(str(refusal))


def wrong_arguments(run: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """What is wrong with the arguments of a call of `run`, or None if they fit its signature."""
    try:
        bound = inspect.signature(run).bind(*args, **kwargs)
    except TypeError as error:
        return str(error)
    if "actor" in bound.arguments and not _names_someone(bound.arguments["actor"]):
        return f"the actor must name who asks, in 1 to {MAX_ACTOR_LENGTH} characters"
    return None


def _names_someone(actor: object) -> bool:
    return isinstance(actor, str) and bool(actor.strip()) and len(actor) <= MAX_ACTOR_LENGTH


def _grace() -> Any:
    return wiring.settings().grace_period


@app.task(name="avtor.admin.accept_eula", base=AdminTask)
def accept_eula(accepted_by: str, actor: str) -> dict[str, Any]:
    """Accept the license agreement in force: `accepted_by` accepts it, `actor` records that."""
    acceptance = accept_agreement(accepted_by, wiring.store(), wiring.now(), _grace(), actor=actor)
    return done(
        f"The license agreement {acceptance.version} is accepted by {acceptance.accepted_by}.",
        agreement=agreement_message(acceptance),
    )


def _status() -> dict[str, Any]:
    return status_message(describe_ledger(wiring.store(), wiring.now(), _grace()))


@app.task(name="avtor.admin.add_license", base=AdminTask)
def add_license(license_key: str, actor: str) -> dict[str, Any]:
    """Validate a key with the license service and add it; show its seats and expiry."""
    every = wiring.settings().revalidate_every
    service, now = wiring.license_service(), wiring.now()
    view = add_license_(license_key, actor, wiring.store(), service, now, _grace(), every)
    message = (
        f"The license {masked_key(view.key)} is added: {seats_until(view.seats_granted, view.expires_at)}."
    )
    return done(message, license=license_message(view), **_status())


@app.task(name="avtor.admin.refresh_license", base=AdminTask)
def refresh_license(license_id: str, actor: str) -> dict[str, Any]:
    """Re-validate one license with the license service now."""
    service, rules, store = wiring.license_service(), wiring.revalidation_rules(), wiring.store()
    key = license_key(license_id, store)
    checked = refresh_license_(key, actor, store, service, wiring.now(), rules)
    license = None if checked.view is None else license_message(checked.view)
    return done(checked.message, outcome=checked.outcome.value, license=license, **_status())


@app.task(name="avtor.admin.refresh_all", base=AdminTask)
def refresh_all(actor: str) -> dict[str, Any]:
    """Re-validate every license with the license service now."""
    service, rules = wiring.license_service(), wiring.revalidation_rules()
    until = wiring.now() + admin_run_budget(wiring.settings())
    checked = refresh_all_licenses(actor, wiring.store(), service, wiring.now, rules, until)
    summary, status = revalidations_summary(checked), _status()
    left = len(status["licenses"]) - len(checked)
    if left > 0:
        summary += (
            f" {left} more not checked: the license service is slow, and this run stops starting "
            "checks before the broker would hand it out again. Refresh again to check them."
        )
    return done(summary, checked=[revalidation_message(c) for c in checked], **status)


@app.task(name="avtor.admin.revalidate_due", base=AdminTask, ignore_result=True)
def revalidate_due() -> dict[str, Any]:
    """The schedule's tick: re-validate the licenses whose check is due, each once."""
    service, rules = wiring.license_service(), wiring.revalidation_rules()
    # Licenses still due when the budget is spent are checked by the next tick.
    until = wiring.now() + admin_run_budget(wiring.settings())
    checked = revalidate_due_licenses(wiring.store(), service, wiring.now, rules, until)
    for check in checked:
        log.info("Scheduled re-validation: %s", check.message)
    return done(revalidations_summary(checked), checked=[revalidation_message(c) for c in checked])


@app.task(name="avtor.admin.remove_license", base=AdminTask)
def remove_license(license_id: str, actor: str) -> dict[str, Any]:
    """Remove a license; its seats are gone at once."""
    key = license_key(license_id, wiring.store())
    view = remove_license_(key, actor, wiring.store(), wiring.now(), _grace())
    status = describe_ledger(wiring.store(), wiring.now(), _grace())
    counts = status.counts
    message = f"The license {license_message(view)['key']} is removed: {counts.licensed} seats licensed."
    if counts.over_limit_by:
        message += (
            f" {counts.in_use} users hold seats, {counts.over_limit_by} more than licensed: nobody may use "
            f"Avtor until {counts.over_limit_by} users are removed or licenses are added."
        )
    return done(message, **status_message(status))


@app.task(name="avtor.admin.add_user", base=AdminTask)
def add_user(username: str, actor: str) -> dict[str, Any]:
    """Give a user a seat."""
    counts = add_user_(username, actor, wiring.store(), wiring.now(), _grace())
    return done(f"{username.strip()} now holds a seat.", **counts_message(counts))


@app.task(name="avtor.admin.remove_user", base=AdminTask)
def remove_user(username: str, actor: str) -> dict[str, Any]:
    """Take a user's seat back."""
    counts = remove_user_(username, actor, wiring.store(), wiring.now(), _grace())
    return done(f"{username.strip()} no longer holds a seat.", **counts_message(counts))


@app.task(name="avtor.admin.status", base=AdminTask)
def status() -> dict[str, Any]:
    """Seats licensed, in use, free, over the limit; each license; the agreement."""
    return done(
        "Status of the Avtor licenses.",
        **status_message(describe_ledger(wiring.store(), wiring.now(), _grace())),
    )
