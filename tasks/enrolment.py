"""`avtor.enrol`: an editor started Avtor; decide whether they may use it."""

from __future__ import annotations

import logging
from typing import Any

from domain.enrolment import InvalidEnrolment, read_enrolment_request
from domain.services.enrolment import enrol_editors
from tasks.retries import TRANSIENT_STORE_ERRORS, backoff
from worker import wiring
from worker.app import app
from worker.enrolment_stream import RESULT_REPR_CHARACTERS
from worker.guard import GuardedTask

log = logging.getLogger(__name__)


@app.task(
    name="avtor.enrol",
    bind=True,
    base=GuardedTask,
    max_retries=8,
    resultrepr_maxsize=RESULT_REPR_CHARACTERS,
)
def enrol(self: GuardedTask, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Decide an editor's start; the result is the contract's decision object."""
    try:
        request = read_enrolment_request(args, kwargs)
    except InvalidEnrolment as invalid:
        log.info("Invalid enrolment request %s: %s", self.request.id, invalid)
        return invalid.decision().as_message()
    try:
        [decision] = enrol_editors([request], wiring.store(), wiring.now(), wiring.settings().grace_period)
    except TRANSIENT_STORE_ERRORS as error:
        raise self.retry(exc=error, countdown=backoff(self.request.retries)) from None
    return decision.as_message()
