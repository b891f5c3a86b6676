"""The HTTP API under /api/v1: the console's operations as JSON, for the console's script and for a CMS.

Answers have the shapes of `avtorlm ... --json`; refusals are `{"ok": false, "message": ...}`.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from cli.events import event_document
from cli.notify import channel_message
from cli.report import report_document, write_csv
from cli.status import alert_document
from cli.users import seat_document
from config.settings import parse_duration
from domain.agreement import AGREEMENT_TEXT, AGREEMENT_VERSION
from domain.events import EventKind
from domain.licenses import masked_key
from domain.moments import parse_instant
from domain.refusals import Refused
from domain.services.agreement import accept_agreement, agreement_in_force
from domain.services.alerts import open_alerts
from domain.services.audit import audit_log, seat_report
from domain.services.licenses import LicenseView, add_license, remove_license, seats_until
from domain.services.status import LedgerStatus, describe_ledger
from domain.services.users import add_user, list_users, remove_users
from tasks.messages import agreement_message, counts_message
from web.auth import Principal, agreed, console_of, csrf_checked
from web.console import Console
from web.views import changes, describe_changes, license_document, notice_channels, status_document

PAGE_LIMIT = 100
MAX_LIMIT = 1000
REFRESH_TASK = "avtor.admin.refresh_license"

# Every route needs a signed-in principal; changes made with a session need its CSRF token.
router = APIRouter(prefix="/api/v1", dependencies=[Depends(csrf_checked)])

Agreed = Annotated[Principal, Depends(agreed)]
SignedIn = Annotated[Principal, Depends(csrf_checked)]


class NewLicense(BaseModel):
    """A key to validate and add."""

    key: str = Field(description="the license key as the vendor sent it")


class NewUser(BaseModel):
    """A user to give a seat."""

    name: str = Field(description="the CMS user name, e.g. sitecore\\bob")


class UsersToRemove(BaseModel):
    """Users whose seats are taken back together."""

    names: list[str] = Field(min_length=1, max_length=10_000, description="the CMS user names")


class LicenseNotFound(Refused):
    """No license has this id."""


@router.get("/agreement", summary="The license agreement and who accepted it")
def show_agreement(request: Request, principal: SignedIn) -> dict[str, Any]:
    """The agreement's text and version, and its acceptance if any."""
    acceptance = agreement_in_force(console_of(request).store)
    return {"version": AGREEMENT_VERSION, "text": AGREEMENT_TEXT, "accepted": agreement_message(acceptance)}


@router.post("/agreement", summary="Accept the license agreement")
def accept(request: Request, principal: SignedIn) -> dict[str, Any]:
    """Accept the agreement in force as the signed-in administrator; accepting again changes nothing."""
    console = console_of(request)
    now = console.now()
    acceptance = accept_agreement(principal.actor, console.store, now, console.grace_period)
    if acceptance.accepted_at == now:
        message = f"The license agreement {acceptance.version} is accepted by {acceptance.accepted_by}."
    else:
        message = (
            f"The license agreement {acceptance.version} was already accepted by {acceptance.accepted_by}: "
            "nothing was changed."
        )
    return {"ok": True, "message": message, "agreement": agreement_message(acceptance)}


@router.get("/status", summary="Seats licensed, in use and free; the licenses; what to do")
def status(request: Request, principal: Agreed) -> dict[str, Any]:
    """The ledger as the License tab shows it."""
    return status_document(_ledger(console_of(request)))


@router.get("/summary", summary="The counts and a fingerprint that changes with the ledger")
def summary(request: Request, principal: SignedIn) -> dict[str, Any]:
    """What the console polls: cheap, and different whenever anything the tabs show has changed."""
    console = console_of(request)
    ledger = _ledger(console)
    latest = audit_log(console.store, limit=1)
    last_event = latest[0].id if latest else 0
    accepted = ledger.agreement is not None and ledger.agreement.is_current
    fingerprint = f"{last_event}.{ledger.counts.in_use}.{ledger.counts.licensed}.{int(accepted)}"
    return {**counts_message(ledger.counts), "fingerprint": fingerprint}


@router.get("/alerts", summary="The open alerts, most recent first")
def alerts(request: Request, principal: Agreed) -> dict[str, Any]:
    """The alerts raised and not yet resolved, as `avtorlm status --json` lists them."""
    return {"alerts": [alert_document(alert) for alert in open_alerts(console_of(request).store)]}


@router.get("/notify/channels", summary="Where alerts are sent: webhooks and e-mail, secrets masked")
def notify_channels(request: Request, principal: Agreed) -> dict[str, Any]:
    """The channels as `avtorlm notify list --json` shows them: never a secret in full."""
    return {"channels": [channel_message(channel) for channel in notice_channels(console_of(request).store)]}


@router.get("/licenses", summary="Every license")
def licenses(request: Request, principal: Agreed) -> dict[str, Any]:
    """Each license: masked key, status, seats, expiry, checks, last problem."""
    return {"licenses": [license_document(view) for view in _ledger(console_of(request)).licenses]}


@router.post("/licenses", status_code=201, summary="Validate a key with the license service and add it")
def add(body: NewLicense, request: Request, principal: Agreed) -> dict[str, Any]:
    """The key is validated first; a refusal says the service's reason and adds nothing."""
    console = console_of(request)
    settings = console.settings
    view = add_license(
        body.key,
        principal.actor,
        console.store,
        console.license_service(),
        console.now(),
        settings.grace_period,
        settings.revalidate_every,
    )
    message = (
        f"The license {masked_key(view.key)} is added: {seats_until(view.seats_granted, view.expires_at)}."
    )
    return _changed(console, message, license=license_document(view))


@router.post("/licenses/{license}/refresh", summary="Re-validate a license now, through the admin worker")
def refresh(license: str, request: Request, principal: Agreed) -> dict[str, Any]:
    """Ask the admin worker to re-validate the license and wait for it; say what changed."""
    console = console_of(request)
    before = _license(console, license)
    answer = console.ask_workers(REFRESH_TASK, {"license_id": before.id, "actor": principal.actor})
    if not isinstance(answer, dict) or not answer.get("ok"):
        message = answer.get("message") if isinstance(answer, dict) else None
        raise Refused(str(message or "The admin worker could not refresh the license."))
    after = answer.get("license")
    found = changes(license_document(before), None if after is None else {"id": license, **after})
    message = f"{answer.get('message')} {describe_changes(found)}"
    return _changed(
        console, message, changes=found, license=None if after is None else {"id": license, **after}
    )


@router.delete("/licenses/{license}", summary="Remove a license; its seats go at once")
def remove(license: str, request: Request, principal: Agreed) -> dict[str, Any]:
    """Remove the license; the answer says when users are now over the limit."""
    console = console_of(request)
    view = _license(console, license)
    remove_license(view.key, principal.actor, console.store, console.now(), console.grace_period)
    return _changed(console, f"The license {masked_key(view.key)} is removed.")


@router.get("/users", summary="Seat holders, a page at a time, optionally searched")
def users(
    request: Request,
    principal: Agreed,
    search: Annotated[str, Query(max_length=1024, description="part of a user name")] = "",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = PAGE_LIMIT,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Who holds seats, oldest seat first; `total` counts the matching holders."""
    page = list_users(console_of(request).store, limit, offset, search)
    return {
        "total": page.total,
        "offset": page.offset,
        "limit": limit,
        "users": [seat_document(seat) for seat in page.seats],
    }


@router.post("/users", status_code=201, summary="Give a user a seat")
def give_seat(body: NewUser, request: Request, principal: Agreed) -> dict[str, Any]:
    """Give the user a seat if one is free."""
    console = console_of(request)
    counts = add_user(body.name, principal.actor, console.store, console.now(), console.grace_period)
    return {"ok": True, "message": f"{body.name.strip()} now holds a seat.", **counts_message(counts)}


@router.post("/users/removal", summary="Take back the seats of one or several users")
def take_seats_back(body: UsersToRemove, request: Request, principal: Agreed) -> dict[str, Any]:
    """Remove the users in one change; names that held no seat are listed, not refused."""
    console = console_of(request)
    done = remove_users(body.names, principal.actor, console.store, console.now(), console.grace_period)
    removed = len(done.removed)
    message = (
        f"{removed} user{'' if removed == 1 else 's'} no longer hold{'s' if removed == 1 else ''} a seat."
    )
    if done.removed and removed <= 3:
        message = f"{', '.join(done.removed)} no longer hold{'s' if removed == 1 else ''} a seat."
    if done.not_holding:
        message += f" Held no seat: {', '.join(done.not_holding)}."
    return {
        "ok": True,
        "message": message,
        "removed": done.removed,
        "not_holding": done.not_holding,
        **counts_message(done.counts),
    }


@router.get("/events", summary="The audit log")
def events(
    request: Request,
    principal: Agreed,
    kind: Annotated[list[EventKind] | None, Query(description="only events of these kinds")] = None,
    since: Annotated[
        str | None, Query(description="RFC 3339 instant, a date, or a duration ago (24h)")
    ] = None,
    until: Annotated[str | None, Query(description="events before this instant")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = PAGE_LIMIT,
) -> dict[str, Any]:
    """The latest `limit` matching events, oldest first (as `avtorlm events --json`)."""
    console = console_of(request)
    found = audit_log(
        console.store, kind or [], point_in_time(since, console), point_in_time(until, console), limit
    )
    return {"events": [event_document(event) for event in found]}


@router.get("/report", summary="Every seat holder, for the vendor's true-up or an audit", response_model=None)
def report(
    request: Request, principal: Agreed, format: Literal["json", "csv"] = "json"
) -> dict[str, Any] | Response:
    """`avtorlm report --format json|csv`, as a download."""
    console = console_of(request)
    found = seat_report(console.store, console.now(), console.grace_period)
    if format == "json":
        return JSONResponse(
            report_document(found, show_keys=False),
            headers={"Content-Disposition": 'attachment; filename="avtor-report.json"'},
        )
    text = io.StringIO()
    write_csv(found, text)
    return Response(
        text.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="avtor-report.csv"'},
    )


def point_in_time(text: str | None, console: Console) -> datetime | None:
    """A filter's time: an RFC 3339 instant, a UTC date, or a duration before now; None if empty."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    try:
        return parse_instant(text if "T" in text.upper() else text + "T00:00:00Z")
    except ValueError:
        pass
    try:
        return console.now() - parse_duration(text)
    except ValueError:
        raise Refused(
            f"{text!r} is not a time: give an instant (2026-11-29T08:00:00Z), a date (2026-11-29) "
            "or a duration ago (24h, 7d)."
        ) from None


def _ledger(console: Console) -> LedgerStatus:
    return describe_ledger(console.store, console.now(), console.grace_period, console.over_limit_policy)


def _license(console: Console, license: str) -> LicenseView:
    for view in _ledger(console).licenses:
        if view.id == license:
            return view
    raise LicenseNotFound("There is no such license (removed meanwhile?): reload the list of licenses.")


def _changed(console: Console, message: str, **extra: Any) -> dict[str, Any]:
    """A change's answer: what happened, and the ledger it left."""
    return {"ok": True, "message": message, **extra, **status_document(_ledger(console))}
