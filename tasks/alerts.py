"""`avtor.admin.evaluate_alerts` (the schedule's tick) and `avtor.admin.deliver_notice`.

The tick decides what to send under the ledger's lock and commits it before any notice
leaves: a second beat, a restart or a retried tick never repeats an alert. Each notice
goes to each channel as a task of its own, retried with exponential backoff; every
attempt is recorded (`avtorlm notify deliveries`).
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery import Task

from domain.notices import notice_document
from domain.services.alerts import evaluate_alerts as evaluate_alerts_
from domain.services.notices import DELIVERED, GAVE_UP
from domain.services.notices import deliver_notice as deliver_notice_
from tasks.admin import AdminTask
from tasks.messages import done, refused
from worker import wiring
from worker.app import app, max_retry_countdown

log = logging.getLogger(__name__)

DELIVER_NOTICE = "avtor.admin.deliver_notice"


def notice_backoff(attempt: int) -> float:
    """How long to wait after the `attempt`-th failed try: 1 s, 2 s, 4 s ..., within the cap."""
    return float(min(2 ** (attempt - 1), max_retry_countdown(wiring.settings())))


@app.task(name="avtor.admin.evaluate_alerts", base=AdminTask, ignore_result=True)
def evaluate_alerts() -> dict[str, Any]:
    """The schedule's tick: raise the alerts whose condition began, resolve those that ended."""
    try:
        backlog = wiring.enrolment_backlog()
    except redis.RedisError as error:
        # Redis down is no reason to keep quiet about licenses and seats; the next tick looks again.
        log.warning("The enrolment stream could not be read for the alerts: %s", error.__class__.__name__)
        backlog = None
    store = wiring.store()
    notices = evaluate_alerts_(store, wiring.now(), wiring.settings().grace_period, backlog)
    if not notices:
        return done("No alert raised or resolved.", notices=[])
    with store.reading() as uow:
        documents = [notice_document(notice, uow.installation_id) for notice in notices]
    channels = wiring.notices().channels()
    for document in documents:
        log.warning("Alert %s: %s", document["event"], document["alert"]["summary"])
        for channel in channels:
            deliver_notice.apply_async(kwargs={"channel": channel.name, "notice": document})
    return done(f"{len(documents)} notices sent to {len(channels)} channels.", notices=documents)


# Failed deliveries stop at AVTOR_NOTICE_ATTEMPTS (at most 30); this only bounds store hiccups too.
@app.task(name=DELIVER_NOTICE, base=AdminTask, bind=True, max_retries=40)
def deliver_notice(self: Task, channel: str, notice: dict[str, Any]) -> dict[str, Any]:
    """Deliver one notice to one channel; a failure is recorded and tried again later."""
    attempt, attempts = self.request.retries + 1, wiring.settings().notice_attempts
    tried = deliver_notice_(
        channel, notice, attempt, attempt >= attempts, wiring.notices(), wiring.notice_senders(), wiring.now()
    )
    if tried.outcome == DELIVERED:
        return done(f"The notice reached {channel}: {tried.detail}.")
    if tried.outcome == GAVE_UP:
        log.error(
            "The notice %s was not delivered to %s after %d tries: %s",
            notice["id"],
            channel,
            attempt,
            tried.detail,
        )
        return refused(f"The notice did not reach {channel} after {attempt} tries: {tried.detail}.")
    raise self.retry(countdown=notice_backoff(attempt))
