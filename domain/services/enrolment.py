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
from domain.ports import Store, UnitOfWork
from domain.seat_policy import OverLimitPolicy, refused_holders
from domain.seats import Assignment, Seat, may_be_reclaimed_soon, worth_recording_start


def enrol_editors(
    requests: Sequence[EnrolmentRequest],
    store: Store,
    now: datetime,
    grace_period: timedelta,
    policy: OverLimitPolicy = OverLimitPolicy.BLOCK_ALL,
    reclaim_idle_after: timedelta | None = None,
) -> list[EnrolmentDecision]:
    """Decide each editor's start, in order.

    Editors who hold seats are answered at a glance: one read, no write, no lock. The
    others (a seat to claim or to refuse) are decided together in one transaction that
    holds the ledger's lock. With idle-seat reclamation on, so is a holder not seen for
    long enough that reclamation may be taking their seat back.
    """
    if not requests:
        return []
    at_a_glance = _decide_at_a_glance(requests, store, now, grace_period, reclaim_idle_after)
    pending = [request for request, decision in zip(requests, at_a_glance, strict=True) if decision is None]
    if not pending:
        return [decision for decision in at_a_glance if decision is not None]
    under_lock = iter(decide_under_lock(pending, store, now, grace_period, policy, reclaim_idle_after))
    return [next(under_lock) if decision is None else decision for decision in at_a_glance]


def _decide_at_a_glance(
    requests: Sequence[EnrolmentRequest],
    store: Store,
    now: datetime,
    grace_period: timedelta,
    reclaim_idle_after: timedelta | None,
) -> list[EnrolmentDecision | None]:
    """The decision of each editor who holds a seat, from one read; None where the lock is needed."""
    glance = store.glance({request.username for request in requests})
    seats_total = seats_licensed(glance.licenses, now, grace_period)
    if glance.seats_in_use > seats_total:
        return [None] * len(requests)  # over the limit: every start is refused under the lock
    decisions: list[EnrolmentDecision | None] = []
    for request in requests:
        holder = glance.holders.get(request.username)
        if holder is None or (
            reclaim_idle_after is not None
            and may_be_reclaimed_soon(holder.last_seen_at, now, reclaim_idle_after)
        ):
            decisions.append(None)
            continue
        replayed = request.request_id is not None and request.request_id == holder.request_id
        outcome = Outcome.GRANTED if replayed else Outcome.ALREADY_ENROLLED
        decisions.append(
            decision_for(outcome, request.username, glance.seats_in_use, seats_total, request.request_id)
        )
    answered = [request for request, decision in zip(requests, decisions, strict=True) if decision]
    _touch_seats(store, answered, {name: holder.last_seen_at for name, holder in glance.holders.items()}, now)
    return decisions


def decide_under_lock(
    requests: Sequence[EnrolmentRequest],
    store: Store,
    now: datetime,
    grace_period: timedelta,
    policy: OverLimitPolicy = OverLimitPolicy.BLOCK_ALL,
    reclaim_idle_after: timedelta | None = None,
) -> list[EnrolmentDecision]:
    """Decide starts that may claim or refuse a seat, in one transaction holding the ledger's lock."""
    if not requests:
        return []
    with store.writing() as uow:
        ledger = _Ledger(uow, requests, now, grace_period, policy)
        decisions = [ledger.decide(request) for request in requests]
        ledger.write()
        enrolled = [
            request
            for request, decision in zip(requests, decisions, strict=True)
            if decision.outcome is Outcome.ALREADY_ENROLLED
        ]
        stale = _stale(enrolled, {name: seat.last_seen_at for name, seat in ledger.holders.items()}, now)
        if reclaim_idle_after is not None and stale:
            # Seen under the lock: a reclamation after this one finds the seat in use.
            uow.seats.touch(stale, now)
            stale = set()
        uow.commit()
    if stale:
        store.touch_seats(stale, now)
    return decisions


class _Ledger:
    """The seat ledger as seen under its lock while a batch is decided."""

    def __init__(
        self,
        uow: UnitOfWork,
        requests: Sequence[EnrolmentRequest],
        now: datetime,
        grace_period: timedelta,
        policy: OverLimitPolicy,
    ) -> None:
        self.uow = uow
        self.now = now
        self.policy = policy
        self.total = seats_licensed(uow.licenses.list(), now, grace_period)
        self.used = uow.seats.count()
        # Who block-newest refuses needs every holder, read only while over the limit (rare).
        self.newest: set[str] = set()
        if self.used > self.total and policy is OverLimitPolicy.BLOCK_NEWEST:
            self.newest = {seat.username for seat in refused_holders(policy, uow.seats.list(), self.total)}
        self.holders, self.recorded = uow.look_up(
            {request.username for request in requests},
            {request.request_id for request in requests if request.request_id is not None},
        )
        self.new_seats: list[Seat] = []
        self.new_events: list[AuditEvent] = []

    def decide(self, request: EnrolmentRequest) -> EnrolmentDecision:
        recorded = self.recorded.get(request.request_id) if request.request_id else None
        if recorded is not None and recorded.subject != request.username:
            return InvalidEnrolment(
                f"request_id {request.request_id!r} was already used for another user: "
                "send a new request_id for every start.",
                request.request_id,
            ).decision()
        holder = self.holders.get(request.username)
        granted_under_it = holder is not None and holder.request_id == request.request_id
        if recorded is not None or (request.request_id is not None and granted_under_it):
            return self._replay(request, recorded, holder)
        return self._decide_anew(request, holder, replayed=False)

    def _replay(
        self, request: EnrolmentRequest, recorded: AuditEvent | None, holder: Seat | None
    ) -> EnrolmentDecision:
        """A start seen before (redelivered, or sent again by its host): it never takes a second seat.

        A refusal is answered again as it was. A start that was let in is let in again only
        if it still may be: the editor still holds a seat and the ledger is not over the
        limit. A seat taken back since is decided as a new start (its request id already
        names the first grant, so the audit event of this one carries it in its detail).
        """
        if recorded is not None and not Outcome(recorded.outcome or Outcome.GRANTED).allowed:
            return _as_recorded(request, recorded, self.policy)
        if holder is None:
            return self._decide_anew(request, holder, replayed=True)
        if self._outcome(holder) is Outcome.OVER_LIMIT:
            self._refuse(request, Outcome.OVER_LIMIT, replayed=True)
            return self._now(request, Outcome.OVER_LIMIT)
        if recorded is None:
            return self._now(request, Outcome.GRANTED)
        return _as_recorded(request, recorded, self.policy)

    def _decide_anew(
        self, request: EnrolmentRequest, holder: Seat | None, replayed: bool
    ) -> EnrolmentDecision:
        outcome = self._outcome(holder)
        if outcome is Outcome.GRANTED:
            self._grant(request, replayed)
        elif outcome is not Outcome.ALREADY_ENROLLED:
            self._refuse(request, outcome, replayed)
        return self._now(request, outcome)

    def _outcome(self, holder: Seat | None) -> Outcome:
        among_newest = holder is not None and holder.username in self.newest
        return decide(holder is not None, self.used, self.total, self.policy, among_newest)

    def _now(self, request: EnrolmentRequest, outcome: Outcome) -> EnrolmentDecision:
        """The decision with the ledger's counts as they stand in this batch."""
        return decision_for(outcome, request.username, self.used, self.total, request.request_id, self.policy)

    def _grant(self, request: EnrolmentRequest, replayed: bool) -> None:
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
        self._record(request, EventKind.SEAT_GRANTED, Outcome.GRANTED, self.used + 1, replayed)
        self.used += 1

    def _refuse(self, request: EnrolmentRequest, outcome: Outcome, replayed: bool) -> None:
        self._record(request, EventKind.SEAT_REFUSED, outcome, self.used, replayed)

    def _record(
        self, request: EnrolmentRequest, kind: EventKind, outcome: Outcome, used_after: int, replayed: bool
    ) -> None:
        # A request id names one event: the first decision of that start. A later decision
        # of the same start keeps the id in its detail instead.
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
            request_id=None if replayed else request.request_id,
            detail=_detail(request, replayed),
        )
        self.new_events.append(event)
        if request.request_id is not None and not replayed:
            self.recorded[request.request_id] = event

    def write(self) -> None:
        if self.new_seats:
            self.uow.seats.add(self.new_seats)
        if self.new_events:
            self.uow.events.record(self.new_events)


def _detail(request: EnrolmentRequest, replayed: bool) -> str:
    """What the audit event says beyond its columns: the host, and a start sent again."""
    parts = [f"host {request.host}"] if request.host else []
    if replayed:
        parts.append(f"request {request.request_id} sent again")
    return "; ".join(parts)


def _as_recorded(
    request: EnrolmentRequest, recorded: AuditEvent, policy: OverLimitPolicy
) -> EnrolmentDecision:
    """The first decision of a start, as its audit event recorded it."""
    return decision_for(
        Outcome(recorded.outcome or Outcome.GRANTED),
        request.username,
        recorded.seats_used_after,
        recorded.seats_total_after,
        request.request_id,
        policy,
    )


def _touch_seats(
    store: Store, requests: Sequence[EnrolmentRequest], last_seen: dict[str, datetime | None], now: datetime
) -> None:
    """Write down "last seen" for holders whose last start was long enough ago."""
    stale = _stale(requests, last_seen, now)
    if stale:
        store.touch_seats(stale, now)


def _stale(
    requests: Sequence[EnrolmentRequest], last_seen: dict[str, datetime | None], now: datetime
) -> set[str]:
    """The holders among `requests` whose start is worth writing down as their last one."""
    return {
        request.username
        for request in requests
        if request.username in last_seen and worth_recording_start(last_seen[request.username], now)
    }
