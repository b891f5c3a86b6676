"""`avtor.admin.*`: what the administrator's screen does.

Each task returns the new state, or `{"ok": false, "message": ...}` when the
operation is refused; nothing is changed by a refused operation.
"""

from __future__ import annotations

from typing import Any

from domain.refusals import Refused
from domain.services.agreement import accept_agreement
from domain.services.licenses import remove_license as remove_license_
from domain.services.status import describe_ledger
from domain.services.users import add_user as add_user_
from domain.services.users import remove_user as remove_user_
from tasks.messages import agreement_message, counts_message, done, license_message, refused, status_message
from tasks.retries import TRANSIENT_STORE_ERRORS, backoff
from worker import wiring
from worker.app import app
from worker.guard import GuardedTask

ADMINISTRATOR = "administrator"


class AdminTask(GuardedTask):
    """An admin task: a refusal is an answer, a store hiccup is retried."""

    abstract = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except Refused as refusal:
            return refused(str(refusal))
        except TypeError as error:
            return refused(f"The request's arguments are wrong: {error}.")
        except TRANSIENT_STORE_ERRORS as error:
            raise self.retry(exc=error, countdown=backoff(self.request.retries)) from None


def _grace() -> Any:
    return wiring.settings().grace_period


@app.task(name="avtor.admin.accept_eula", base=AdminTask, max_retries=5)
def accept_eula(accepted_by: str) -> dict[str, Any]:
    """Accept the license agreement in force."""
    acceptance = accept_agreement(accepted_by, wiring.store(), wiring.now(), _grace())
    return done(
        f"The license agreement {acceptance.version} is accepted by {acceptance.accepted_by}.",
        agreement=agreement_message(acceptance),
    )


@app.task(name="avtor.admin.remove_license", base=AdminTask, max_retries=5)
def remove_license(license_key: str, requested_by: str = ADMINISTRATOR) -> dict[str, Any]:
    """Remove a license; its seats are gone at once."""
    view = remove_license_(license_key, requested_by, wiring.store(), wiring.now(), _grace())
    status = describe_ledger(wiring.store(), wiring.now(), _grace())
    counts = status.counts
    message = f"The license {license_message(view)['key']} is removed: {counts.licensed} seats licensed."
    if counts.over_limit_by:
        message += (
            f" {counts.in_use} users hold seats, {counts.over_limit_by} more than licensed: nobody may use "
            f"Avtor until {counts.over_limit_by} users are removed or licenses are added."
        )
    return done(message, **status_message(status))


@app.task(name="avtor.admin.add_user", base=AdminTask, max_retries=5)
def add_user(username: str, requested_by: str = ADMINISTRATOR) -> dict[str, Any]:
    """Give a user a seat."""
    counts = add_user_(username, requested_by, wiring.store(), wiring.now(), _grace())
    return done(f"{username.strip()} now holds a seat.", **counts_message(counts))


@app.task(name="avtor.admin.remove_user", base=AdminTask, max_retries=5)
def remove_user(username: str, requested_by: str = ADMINISTRATOR) -> dict[str, Any]:
    """Take a user's seat back."""
    counts = remove_user_(username, requested_by, wiring.store(), wiring.now(), _grace())
    return done(f"{username.strip()} no longer holds a seat.", **counts_message(counts))


@app.task(name="avtor.admin.status", base=AdminTask, max_retries=5)
def status() -> dict[str, Any]:
    """Seats licensed, in use, free, over the limit; each license; the agreement."""
    return done(
        "Status of the Avtor licenses.",
        **status_message(describe_ledger(wiring.store(), wiring.now(), _grace())),
    )
