"""Alerts: the conditions an administrator must hear of before editors are refused.

Each condition is named by a key (its kind and subject) and a threshold. An alert is
raised once per key and threshold; a key whose condition ended gets one "resolved"
notice. What is open lives in the store, so restarts and several beats never repeat
an alert: `reconcile` compares what holds now with what is open and says what to send.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from domain.events import AuditEvent
from domain.licenses import License, LicenseStatus, masked_key
from domain.moments import format_instant

EXPIRY_DAYS = (30, 7, 1)
GRACE_DAYS = (7, 3, 1)
# Seats in use, in percent of those licensed, at which the administrator is warned.
SEAT_PERCENTS = (90, 100)
# Refusals are summarized in one notice at most this often.
REFUSAL_SUMMARY_EVERY = timedelta(hours=1)
# A license removed this recently is named as the cause when the installation is over the limit.
REMOVAL_LOOKBACK = timedelta(days=1)
DAY = timedelta(days=1)


class AlertKind(StrEnum):
    """What an alert is about."""

    LICENSE_EXPIRES = "license_expires"
    GRACE_RUNS_OUT = "grace_runs_out"
    SEATS_RUNNING_OUT = "seats_running_out"
    EDITORS_REFUSED = "editors_refused"
    OVER_LIMIT = "over_limit"
    LICENSE_LOSS_OVER_LIMIT = "license_loss_over_limit"
    ENROLMENT_STALLED = "enrolment_stalled"


class NoticeKind(StrEnum):
    """Whether a notice opens an alert or says its condition ended."""

    RAISED = "raised"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Alert:
    """A condition that holds now, as the administrator reads it."""

    kind: AlertKind
    subject: str
    threshold: int
    summary: str
    action: str

    @property
    def key(self) -> str:
        """What names the condition whatever its threshold: its kind and subject."""
        return f"{self.kind.value}:{self.subject}"


@dataclass(frozen=True)
class OpenAlert:
    """An alert raised and not yet resolved, as the store remembers it."""

    alert: Alert
    raised_at: datetime


@dataclass(frozen=True)
class Notice:
    """One thing to tell the administrator: an alert raised, or resolved."""

    kind: NoticeKind
    alert: Alert
    at: datetime
    raised_at: datetime


@dataclass(frozen=True)
class EnrolmentBacklog:
    """The enrolment stream at a glance: entries waiting and consumers alive."""

    waiting: int
    consumers_alive: int
    oldest_age: timedelta | None = None


@dataclass(frozen=True)
class Situation:
    """What the conditions are judged on, read at one instant."""

    now: datetime
    grace_period: timedelta
    licenses: Sequence[License]
    seats_licensed: int
    seats_in_use: int
    # Seat refusals within the last REFUSAL_SUMMARY_EVERY, oldest first.
    refusals: Sequence[AuditEvent] = ()
    # License removals within the last REMOVAL_LOOKBACK.
    removals: Sequence[AuditEvent] = ()
    backlog: EnrolmentBacklog | None = None


def first_threshold(left: timedelta, thresholds: Sequence[int]) -> int | None:
    """The smallest threshold (in days) that `left` is within, or None if it is within none."""
    reached = [days for days in thresholds if left <= days * DAY]
    return min(reached) if reached else None


def _days(left: timedelta) -> str:
    days = max(0, round(left / DAY, 1))
    return "1 day" if days == 1 else f"{days:g} days"


def license_conditions(license: License, now: datetime, grace_period: timedelta) -> list[Alert]:
    """The expiry and grace conditions of one license at `now`."""
    alerts: list[Alert] = []
    grant = license.grant_at(now, grace_period)
    name = masked_key(license.key)
    if grant.status is LicenseStatus.ACTIVE and license.expires_at is not None:
        left = license.expires_at - now
        threshold = first_threshold(left, EXPIRY_DAYS)
        if threshold is not None:
            alerts.append(
                Alert(
                    AlertKind.LICENSE_EXPIRES,
                    license.id,
                    threshold,
                    f"The license {name} expires in {_days(left)}, at {format_instant(license.expires_at)}.",
                    "Renew it with the vendor, then refresh it (avtorlm license refresh) so the new "
                    "expiry is known; its seats are gone when it expires.",
                )
            )
    if grant.status is LicenseStatus.ACTIVE and license.verified_at is not None and license.failed_checks:
        left = license.verified_at + grace_period - now
        threshold = first_threshold(left, GRACE_DAYS)
        if threshold is not None:
            alerts.append(
                Alert(
                    AlertKind.GRACE_RUNS_OUT,
                    license.id,
                    threshold,
                    f"The license {name} could not be verified since "
                    f"{format_instant(license.verified_at)}; its grace period ends in {_days(left)}.",
                    "Check that the manager reaches the license service (AVTOR_LICENSE_SERVER_URL); "
                    f"the last check said: {license.last_error or 'no answer'}. Its seats are gone "
                    "when the grace period ends.",
                )
            )
    return alerts


def seat_conditions(situation: Situation) -> list[Alert]:
    """Seats running out, all allocated, over the limit, and what put the installation over it."""
    licensed, in_use = situation.seats_licensed, situation.seats_in_use
    alerts: list[Alert] = []
    if licensed > 0 and in_use <= licensed:
        reached = [percent for percent in SEAT_PERCENTS if in_use * 100 >= percent * licensed]
        if reached:
            percent = max(reached)
            alerts.append(
                Alert(
                    AlertKind.SEATS_RUNNING_OUT,
                    "seats",
                    percent,
                    f"{in_use} of {licensed} seats are allocated"
                    + (": none is free." if in_use >= licensed else f" ({licensed - in_use} free)."),
                    "Add a license or seats with the vendor, or remove users who no longer use Avtor "
                    "(avtorlm user remove NAME).",
                )
            )
    if in_use > licensed:
        over = in_use - licensed
        alerts.append(
            Alert(
                AlertKind.OVER_LIMIT,
                "seats",
                over,
                f"{in_use} users hold seats but {licensed} are licensed: {over} over the limit.",
                f"Remove {over} users (avtorlm user remove NAME) or add licenses; "
                "until then editors are refused.",
            )
        )
        alerts.extend(_license_losses(situation, over))
    return alerts


def _license_losses(situation: Situation, over: int) -> list[Alert]:
    losses: list[Alert] = []
    for license in situation.licenses:
        if license.grant_at(situation.now, situation.grace_period).status is LicenseStatus.EXPIRED:
            losses.append(_loss(license.id, f"The license {masked_key(license.key)} expired", over))
    for removal in situation.removals:
        losses.append(_loss(removal.subject, f"The license {removal.subject} was removed", over))
    return losses


def _loss(subject: str, what: str, over: int) -> Alert:
    return Alert(
        AlertKind.LICENSE_LOSS_OVER_LIMIT,
        subject,
        1,
        f"{what}, and that put the installation {over} users over the limit.",
        "Renew or add a license, or remove users (avtorlm user remove NAME); until then editors are refused.",
    )


def refusal_condition(situation: Situation) -> list[Alert]:
    """Editors refused for want of a seat in the last hour, summarized."""
    if not situation.refusals:
        return []
    editors = sorted({event.subject for event in situation.refusals})
    shown = ", ".join(editors[:10]) + (f" and {len(editors) - 10} more" if len(editors) > 10 else "")
    return [
        Alert(
            AlertKind.EDITORS_REFUSED,
            "editors",
            len(editors),
            f"{len(editors)} editors were refused for want of a seat in the last hour "
            f"({len(situation.refusals)} refusals): {shown}.",
            "Add a license or seats, or remove users who no longer use Avtor (avtorlm user remove NAME).",
        )
    ]


def enrolment_condition(backlog: EnrolmentBacklog | None) -> list[Alert]:
    """Entries wait in the enrolment stream and no consumer reads it."""
    if backlog is None or backlog.waiting == 0 or backlog.consumers_alive > 0:
        return []
    waited = "" if backlog.oldest_age is None else f"; the oldest has waited {_days(backlog.oldest_age)}"
    return [
        Alert(
            AlertKind.ENROLMENT_STALLED,
            "enrolment",
            1,
            f"{backlog.waiting} editors' starts wait in the enrolment stream and no enrolment consumer "
            f"reads it{waited}.",
            "Start the enrolment consumer (avtor-enrolment-consumer) and check its log; editors wait "
            "until it runs.",
        )
    ]


def current_alerts(situation: Situation) -> list[Alert]:
    """Every condition that holds in `situation`."""
    alerts: list[Alert] = []
    for license in situation.licenses:
        alerts.extend(license_conditions(license, situation.now, situation.grace_period))
    alerts.extend(seat_conditions(situation))
    alerts.extend(refusal_condition(situation))
    alerts.extend(enrolment_condition(situation.backlog))
    return alerts


def _tells_more(current: Alert, opened: OpenAlert, now: datetime) -> bool:
    """Whether a condition already open deserves a new notice."""
    if current.kind is AlertKind.EDITORS_REFUSED:
        # Refusals are summarized at most once an hour, and only if there were new ones.
        return now - opened.raised_at >= REFUSAL_SUMMARY_EVERY
    if current.kind in (AlertKind.OVER_LIMIT, AlertKind.LICENSE_LOSS_OVER_LIMIT):
        return False
    if current.kind is AlertKind.SEATS_RUNNING_OUT:
        return current.threshold > opened.alert.threshold
    # Days left: a lower threshold is a new, more urgent alert.
    return current.threshold < opened.alert.threshold


def reconcile(
    opened: Sequence[OpenAlert], current: Sequence[Alert], now: datetime
) -> tuple[list[OpenAlert], list[Notice]]:
    """What is open after `now`, and the notices to send: new alerts raised, ended ones resolved."""
    by_key = {open_alert.alert.key: open_alert for open_alert in opened}
    still_open: list[OpenAlert] = []
    notices: list[Notice] = []
    seen: set[str] = set()
    for alert in current:
        if alert.key in seen:
            continue
        seen.add(alert.key)
        before = by_key.get(alert.key)
        if before is None or _tells_more(alert, before, now):
            still_open.append(OpenAlert(alert, now))
            notices.append(Notice(NoticeKind.RAISED, alert, now, now))
        elif _eased(alert, before):
            # A license renewed from 7 days to 20 ends the 7-day alert and opens the 30-day one.
            notices.append(Notice(NoticeKind.RESOLVED, before.alert, now, before.raised_at))
            still_open.append(OpenAlert(alert, now))
            notices.append(Notice(NoticeKind.RAISED, alert, now, now))
        else:
            still_open.append(replace(before, alert=replace(alert, threshold=before.alert.threshold)))
    for key, before in by_key.items():
        if key not in seen:
            notices.append(Notice(NoticeKind.RESOLVED, before.alert, now, before.raised_at))
    return still_open, notices


def _eased(current: Alert, opened: OpenAlert) -> bool:
    if current.kind in (AlertKind.LICENSE_EXPIRES, AlertKind.GRACE_RUNS_OUT):
        return current.threshold > opened.alert.threshold
    if current.kind is AlertKind.SEATS_RUNNING_OUT:
        return current.threshold < opened.alert.threshold
    return False
