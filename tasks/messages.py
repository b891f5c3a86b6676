"""The JSON objects the admin tasks return: the new state, or a refusal with its reason."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from domain.agreement import Acceptance
from domain.licenses import masked_key
from domain.moments import format_instant
from domain.services.ledger import SeatCounts
from domain.services.licenses import LicenseView
from domain.services.revalidation import CheckOutcome, Revalidation
from domain.services.status import LedgerStatus


def refused(message: str) -> dict[str, Any]:
    """A refused operation: nothing was changed."""
    return {"ok": False, "message": message}


def done(message: str, **state: Any) -> dict[str, Any]:
    """A completed operation and the state it left."""
    return {"ok": True, "message": message, **state}


def counts_message(counts: SeatCounts) -> dict[str, Any]:
    """Seats licensed, in use, free and over the limit."""
    return {
        "seats_licensed": counts.licensed,
        "seats_in_use": counts.in_use,
        "seats_free": counts.free,
        "over_limit": counts.over_limit_by > 0,
        "over_limit_by": counts.over_limit_by,
    }


def license_message(view: LicenseView) -> dict[str, Any]:
    """One license, its key masked."""
    return {
        "id": view.id,
        "key": masked_key(view.key),
        "status": view.status.value,
        "seats": view.seats,
        "seats_granted": view.seats_granted,
        "expires_at": _instant(view.expires_at),
        "customer": view.customer,
        "added_at": _instant(view.added_at),
        "last_verified_at": _instant(view.verified_at),
        "grace_ends_at": _instant(view.grace_ends_at),
        "last_checked_at": _instant(view.last_checked_at),
        "next_revalidation_at": _instant(view.next_check_at),
        "last_error": view.last_error,
        "failed_checks": view.failed_checks,
    }


def revalidation_message(checked: Revalidation) -> dict[str, Any]:
    """One check of a license: what it came to, and the license afterwards (None: removed)."""
    return {
        "key": masked_key(checked.key),
        "outcome": checked.outcome.value,
        "message": checked.message,
        "license": None if checked.view is None else license_message(checked.view),
    }


def revalidations_summary(checked: list[Revalidation]) -> str:
    """How a run of checks went, in one sentence."""
    if not checked:
        return "No license needed re-validation."
    counts = Counter(check.outcome for check in checked)
    parts = [f"{counts[outcome]} {_OUTCOME_WORDS[outcome]}" for outcome in CheckOutcome if counts[outcome]]
    noun = "license" if len(checked) == 1 else "licenses"
    return f"{len(checked)} {noun} re-validated: {', '.join(parts)}."


_OUTCOME_WORDS = {
    CheckOutcome.VERIFIED: "verified",
    CheckOutcome.REJECTED: "refused by the license service",
    CheckOutcome.COULD_NOT_VERIFY: "could not be verified",
}


def agreement_message(acceptance: Acceptance | None) -> dict[str, Any] | None:
    """Who accepted which version of the agreement, and when."""
    if acceptance is None:
        return None
    return {
        "version": acceptance.version,
        "accepted_by": acceptance.accepted_by,
        "accepted_at": _instant(acceptance.accepted_at),
        "current": acceptance.is_current,
    }


def status_message(status: LedgerStatus) -> dict[str, Any]:
    """The administrator's screen: counts, licenses, agreement."""
    return {
        **counts_message(status.counts),
        "licenses": [license_message(view) for view in status.licenses],
        "agreement": agreement_message(status.agreement),
    }


def _instant(moment: datetime | None) -> str | None:
    return None if moment is None else format_instant(moment)
