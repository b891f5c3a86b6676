"""Accepting the license agreement."""

from __future__ import annotations

from datetime import datetime, timedelta

from domain.agreement import AGREEMENT_VERSION, Acceptance, AgreementNotAccepted
from domain.events import EventKind
from domain.ports import Store, UnitOfWork
from domain.refusals import Refused
from domain.services.ledger import count_seats

MAX_NAME_LENGTH = 200


def accept_agreement(
    accepted_by: str, store: Store, now: datetime, grace_period: timedelta, actor: str | None = None
) -> Acceptance:
    """Record that `accepted_by` accepted the agreement in force; repeated acceptance is kept as is.

    The audit log names `actor` (who recorded the acceptance), or `accepted_by` if not given.
    """
    name = accepted_by.strip() if isinstance(accepted_by, str) else ""
    if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise Refused("Say who accepts the license agreement: a name of 1 to 200 printable characters.")
    with store.writing() as uow:
        latest = uow.agreements.latest()
        if latest is not None and latest.is_current:
            return latest
        acceptance = Acceptance(AGREEMENT_VERSION, name, now)
        uow.agreements.record(acceptance)
        counts = count_seats(uow, now, grace_period)
        uow.events.record(
            [counts.event(EventKind.AGREEMENT_ACCEPTED, now, actor or name, f"agreement {AGREEMENT_VERSION}")]
        )
        uow.commit()
    return acceptance


def agreement_in_force(store: Store) -> Acceptance | None:
    """The acceptance of the agreement in force, or None if nobody has accepted it yet."""
    with store.reading() as uow:
        latest = uow.agreements.latest()
    return latest if latest is not None and latest.is_current else None


def require_agreement(uow: UnitOfWork) -> None:
    """Refuse to go on unless the agreement in force has been accepted."""
    latest = uow.agreements.latest()
    if latest is None or not latest.is_current:
        raise AgreementNotAccepted()
