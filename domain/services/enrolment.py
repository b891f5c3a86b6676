"""Deciding editors' starts, many at a time, with one locked transaction at most."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from domain.enrolment import (
    EnrolmentDecision,
    EnrolmentRequest,
    InvalidEnrolment,
    Outcome,
    decide,
    decision_for,
)
from domain.events import EDITOR_START, AuditEvent, EventKind
from domain.licenses import seats_licensed
from domain.ports import Glance, Store, UnitOfWork
from domain.seats import Assignment, Seat, worth_recording_start


def enrol_editors(
    requests: Sequence[EnrolmentRequest], store: Store, now: datetime, grace_period: timedelta
) -> list[EnrolmentDecision]:
    """Decide each editor's start; claims and refusals are written in one transaction."""
    if not requests:
        return []
    glance = store.glance({request.username for request in requests})
    decisions = _decide_at_a_glance(requests, glance, seats_licensed(glance.licenses, now, grace_period))
    if decisions is None:
        decisions = _decide_under_lock(requests, store, now, grace_period)
    _touch_seats(store, decisions, glance, now)
    return decisions


def _decide_at_a_glance(
    requests: Sequence[EnrolmentRequest], glance: Glance, seats_total: int
) -> list[EnrolmentDecision] | None:
    """Answer editors who already hold seats without a write; None if any needs the lock."""
    if glance.seats_in_use > seats_total:
        return None
    decisions = []
    for request in requests:
        holder = glance.holders.get(request.username)
        if holder is None:
            return None
        replayed = request.request_id is not None and request.request_id == holder.request_id
        outcome = Outcome.GRANTED if replayed else Outcome.ALREADY_ENROLLED
        decisions.append(
            decision_for(outcome, request.username, glance.seats_in_use, seats_total, request.request_id)
        )
    return decisions


def _decide_under_lock(
    requests: Sequence[EnrolmentRequest], store: Store, now: datetime, grace_period: timedelta
) -> list[EnrolmentDecision]:
    with store.writing() as uow:
        ledger = _Ledger(uow, requests, now, grace_period)
        decisions = [ledger.decide(request) for request in requests]
        ledger.write()
        uow.commit()
    return decisions


class _Ledger:
    """The seat ledger as seen under its lock while a batch is decided."""

    def __init__(
        self, uow: UnitOfWork, requests: Sequence[EnrolmentRequest], now: datetime, grace_period: timedelta
    ) -> None:
        self.uow = uow
        self.now = now
        self.total = seats_licensed(uow.licenses.list(), now, grace_period)
        self.used = uow.seats.count()
        self.holders = uow.seats.holders({request.username for request in requests})
        self.recorded = uow.events.for_requests(
            {request.request_id for request in requests if request.request_id is not None}
        )
        self.new_seats: list[Seat] = []
        self.new_events: list[AuditEvent] = []

    def decide(self, request: EnrolmentRequest) -> EnrolmentDecision:
        recorded = self.recorded.get(request.request_id) if request.request_id else None
        if recorded is not None:
            return self._replay(request, recorded)
        holder = self.holders.get(request.username)
        if holder is not None and request.request_id is not None and holder.request_id == request.request_id:
            return decision_for(Outcome.GRANTED, request.username, self.used, self.total, request.request_id)
        outcome = decide(holder is not None, self.used, self.total)
        if outcome is Outcome.GRANTED:
            self._grant(request)
        elif outcome is not Outcome.ALREADY_ENROLLED:
            self._refuse(request, outcome)
        return decision_for(outcome, request.username, self.used, self.total, request.request_id)

    def _replay(self, request: EnrolmentRequest, recorded: AuditEvent) -> EnrolmentDecision:
        if recorded.subject != request.username:
            return InvalidEnrolment(
                f"request_id {request.request_id!r} was already used for another user: "
                "send a new request_id for every start.",
                request.request_id,
            ).decision()
        return decision_for(
            Outcome(recorded.outcome or Outcome.GRANTED),
            request.username,
            recorded.seats_used_after,
            recorded.seats_total_after,
            request.request_id,
        )

    def _grant(self, request: EnrolmentRequest) -> None:
        seat = Seat(
            username=request.username,
            display_name=request.display_name,
            assignment=Assignment.AUTOMATIC,
            assigned_at=self.now,
            assigned_by=EDITOR_START,
            last_seen_at=self.now,
            request_id=request.request_id,
        )
        self.new_seats.append(seat)
        self.holders[request.username] = seat
        self._record(request, EventKind.SEAT_GRANTED, Outcome.GRANTED, self.used + 1)
        self.used += 1

    def _refuse(self, request: EnrolmentRequest, outcome: Outcome) -> None:
        self._record(request, EventKind.SEAT_REFUSED, outcome, self.used)

    def _record(self, request: EnrolmentRequest, kind: EventKind, outcome: Outcome, used_after: int) -> None:
        event = AuditEvent(
            kind=kind,
            at=self.now,
            actor=EDITOR_START,
            subject=request.username,
            seats_total_before=self.total,
            seats_total_after=self.total,
            seats_used_before=self.used,
            seats_used_after=used_after,
            outcome=outcome.value,
            request_id=request.request_id,
        )
        self.new_events.append(event)
        if request.request_id is not None:
            self.recorded[request.request_id] = event

    def write(self) -> None:
        if self.new_seats:
            self.uow.seats.add(self.new_seats)
        if self.new_events:
            self.uow.events.record(self.new_events)


def _touch_seats(store: Store, decisions: Sequence[EnrolmentDecision], glance: Glance, now: datetime) -> None:
    """Write down "last seen" for holders whose last start was long enough ago."""
    stale = set()
    for decision in decisions:
        if decision.outcome is not Outcome.ALREADY_ENROLLED or decision.username is None:
            continue
        holder = glance.holders.get(decision.username)
        if holder is not None and worth_recording_start(holder.last_seen_at, now):
            stale.add(decision.username)
    if stale:
        store.touch_seats(stale, now)
