"""Evaluating the alerts: judge the conditions and remember, under the ledger's lock, what was said."""

from __future__ import annotations

from datetime import datetime, timedelta

from domain.alerts import (
    REFUSAL_SUMMARY_EVERY,
    REMOVAL_LOOKBACK,
    EnrolmentBacklog,
    Notice,
    OpenAlert,
    Situation,
    current_alerts,
    reconcile,
)
from domain.enrolment import Outcome
from domain.events import EventKind
from domain.licenses import seats_licensed
from domain.ports import Store

# Refusals for want of a seat; a malformed start is the host's problem, not a lack of seats.
WANT_OF_A_SEAT = frozenset({Outcome.NO_SEATS.value, Outcome.OVER_LIMIT.value})


def evaluate_alerts(
    store: Store, now: datetime, grace_period: timedelta, backlog: EnrolmentBacklog | None = None
) -> list[Notice]:
    """The notices due at `now`, remembered as sent: a second evaluation does not repeat them.

    The writing unit of work holds the ledger's lock, so two evaluations at once (several
    beats, a retried task) see each other's result and never both raise the same alert.
    """
    with store.writing() as uow:
        licenses = uow.licenses.list()
        situation = Situation(
            now=now,
            grace_period=grace_period,
            licenses=licenses,
            seats_licensed=seats_licensed(licenses, now, grace_period),
            seats_in_use=uow.seats.count(),
            refusals=[
                event
                for event in uow.events.list([EventKind.SEAT_REFUSED], since=now - REFUSAL_SUMMARY_EVERY)
                if event.outcome in WANT_OF_A_SEAT
            ],
            removals=uow.events.list([EventKind.LICENSE_REMOVED], since=now - REMOVAL_LOOKBACK),
            backlog=backlog,
        )
        still_open, notices = reconcile(uow.alerts.open(), current_alerts(situation), now)
        uow.alerts.replace(still_open)
        uow.commit()
    return notices


def open_alerts(store: Store) -> list[OpenAlert]:
    """The alerts raised and not yet resolved, most recent first."""
    with store.reading() as uow:
        alerts = uow.alerts.open()
    return sorted(alerts, key=lambda alert: alert.raised_at, reverse=True)
