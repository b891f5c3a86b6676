"""The console's pages: server-rendered tabs that read the ledger; changes go through the API."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from importlib.resources import files
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from config.settings import parse_duration
from domain.access import SignInThrottled
from domain.agreement import AGREEMENT_TEXT, AGREEMENT_VERSION
from domain.events import EventKind
from domain.licenses import masked_key
from domain.moments import format_instant
from domain.refusals import Refused
from domain.services.access import sign_in, sign_out
from domain.services.agreement import accept_agreement, agreement_in_force
from domain.services.alerts import open_alerts
from domain.services.audit import audit_log
from domain.services.reclamation import idle_page
from domain.services.status import describe_ledger
from domain.services.users import list_users
from web.api import point_in_time, summary
from web.auth import (
    CSRF_FIELD,
    SIGN_IN_COOKIE,
    Principal,
    agreed,
    clear_session_cookie,
    client_address,
    console_of,
    csrf_checked,
    is_secure,
    set_session_cookie,
)
from web.views import banner_for, channel_row, notice_channels, removal_warning

USERS_PER_PAGE = 50
EVENTS_SHOWN = 200
# The pages' script asks for the part of a tab that follows the ledger with this header.
FRAGMENT_HEADER = "X-Avtor-Fragment"

templates = Jinja2Templates(directory=str(files("web") / "templates"))

public = APIRouter(include_in_schema=False)
router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_checked)])

Agreed = Annotated[Principal, Depends(agreed)]
SignedIn = Annotated[Principal, Depends(csrf_checked)]


def when(moment: datetime | None) -> str:
    """An instant as the pages show it: written as everywhere else (RFC 3339 UTC to the second)."""
    return "—" if moment is None else format_instant(moment)


def iso(moment: datetime | None) -> str:
    """An instant for a <time datetime=...> attribute."""
    return "" if moment is None else format_instant(moment)


templates.env.filters["when"] = when
templates.env.filters["iso"] = iso


# --- signing in and out ------------------------------------------------------------------------------


@public.get("/sign-in")
def sign_in_page(request: Request) -> Response:
    """The sign-in form; a fresh token in a cookie and the form guards it against forged sign-ins."""
    return _sign_in_form(request, message=None, status_code=200)


@public.post("/sign-in")
def sign_in_submitted(
    request: Request,
    name: Annotated[str, Form(max_length=1024)] = "",
    password: Annotated[str, Form(max_length=4096)] = "",
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    """Check the name and password; on success start a session and open the console."""
    expected = request.cookies.get(SIGN_IN_COOKIE)
    if not expected or csrf_token != expected:
        return _sign_in_form(request, "The sign-in form had expired: sign in again.", 403)
    console = console_of(request)
    try:
        signed = sign_in(
            name,
            password,
            client_address(request),
            console.access,
            console.passwords,
            console.now(),
            console.session_timeout,
        )
    except SignInThrottled as refusal:
        seconds = max(1, round(refusal.retry_after.total_seconds()))
        refused = _sign_in_form(request, str(refusal), 429, name)
        refused.headers["Retry-After"] = str(seconds)
        return refused
    except Refused as refusal:
        return _sign_in_form(request, str(refusal), 401, name)
    response = RedirectResponse("/", status_code=303)
    set_session_cookie(response, request, signed.secret)
    response.delete_cookie(SIGN_IN_COOKIE, path="/sign-in")
    return response


@router.post("/sign-out")
def sign_out_submitted(request: Request, principal: SignedIn) -> Response:
    """End the session and go back to the sign-in page."""
    if principal.session_secret is not None:
        sign_out(principal.session_secret, console_of(request).access)
    response = RedirectResponse("/sign-in", status_code=303)
    clear_session_cookie(response, request)
    return response


# --- the agreement -------------------------------------------------------------------------------------


@router.get("/")
def home(request: Request, principal: SignedIn) -> Response:
    """The License tab, or the agreement while it is not accepted."""
    accepted = agreement_in_force(console_of(request).store) is not None
    return RedirectResponse("/license" if accepted else "/agreement", status_code=303)


@router.get("/agreement")
def agreement_page(request: Request, principal: SignedIn) -> Response:
    """The license agreement in full, with Accept until it is accepted."""
    acceptance = agreement_in_force(console_of(request).store)
    return _page(
        request,
        principal,
        "agreement.html",
        tab="agreement",
        title="License agreement",
        text=AGREEMENT_TEXT,
        version=AGREEMENT_VERSION,
        acceptance=acceptance,
    )


@router.post("/agreement")
def agreement_accepted(request: Request, principal: SignedIn) -> Response:
    """Accept the agreement as the signed-in administrator, then open the License tab."""
    console = console_of(request)
    accept_agreement(principal.actor, console.store, console.now(), console.grace_period)
    return RedirectResponse("/license", status_code=303)


# --- the tabs --------------------------------------------------------------------------------------------


@router.get("/license")
def license_tab(request: Request, principal: Agreed) -> Response:
    """Every license, the totals, the over-limit policy, what to do when seats run out, alerts, channels."""
    console = console_of(request)
    ledger = describe_ledger(console.store, console.now(), console.grace_period, console.over_limit_policy)
    rows = [
        {
            "view": view,
            "id": view.id,
            "masked": masked_key(view.key),
            "warning": removal_warning(view, ledger.counts),
        }
        for view in ledger.licenses
    ]
    return _tab(
        request,
        principal,
        "license",
        title="License",
        counts=ledger.counts,
        banner=banner_for(ledger.counts, len(ledger.licenses), ledger.policy),
        licenses=rows,
        policy=ledger.policy,
        refused=ledger.refused,
        alerts=open_alerts(console.store),
        channels=[channel_row(channel) for channel in notice_channels(console.store)],
    )


@router.get("/users")
def users_tab(
    request: Request,
    principal: Agreed,
    q: Annotated[str, Query(max_length=1024)] = "",
    page: Annotated[int, Query(ge=1)] = 1,
    idle: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """The seat holders, searched and a page at a time; how many must go when over the limit.

    With `idle` (a time such as 90d), only the holders idle-seat reclamation would take back.
    """
    console = console_of(request)
    ledger = describe_ledger(console.store, console.now(), console.grace_period, console.over_limit_policy)
    idle_for, idle_problem = _idle_time(idle)
    if idle_for is not None:
        found = idle_page(console.store, console.now(), idle_for, q)
    else:
        found = list_users(console.store, USERS_PER_PAGE, (page - 1) * USERS_PER_PAGE, q)
    pages = 1 if idle_for is not None else max(1, -(-found.total // USERS_PER_PAGE))
    return _tab(
        request,
        principal,
        "users",
        title="Users",
        counts=ledger.counts,
        banner=banner_for(ledger.counts, len(ledger.licenses), ledger.policy),
        seats=found.seats,
        total=found.total,
        first=found.offset + 1,
        last=found.offset + len(found.seats),
        page=page,
        pages=pages,
        q=q.strip(),
        idle=idle.strip() if idle_for is not None else "",
        idle_problem=idle_problem,
        reclaim_after=console.settings.reclaim_idle_after,
    )


def _idle_time(text: str) -> tuple[timedelta | None, str | None]:
    """The idle time asked for, or why it cannot be used."""
    if not text.strip():
        return None, None
    try:
        return parse_duration(text.strip()), None
    except ValueError:
        return None, f"{text.strip()!r} is not a time: write it as 90d, 12w or 2160h."


@router.get("/events")
def events_tab(
    request: Request,
    principal: Agreed,
    kind: Annotated[str, Query(max_length=64)] = "",
    since: Annotated[str, Query(max_length=64)] = "",
    until: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """The audit log, newest first, filtered by kind and time."""
    console = console_of(request)
    kinds = [EventKind(kind)] if kind in {k.value for k in EventKind} else []
    problem = None
    try:
        start, end = point_in_time(since, console), point_in_time(until, console)
    except Refused as refusal:
        problem, start, end = str(refusal), None, None
    found = list(reversed(audit_log(console.store, kinds, start, end, EVENTS_SHOWN)))
    return _tab(
        request,
        principal,
        "events",
        title="Events",
        events=found,
        kinds=[k.value for k in EventKind],
        kind=kind,
        since=since,
        until=until,
        problem=problem,
        limit=EVENTS_SHOWN,
    )


@router.get("/report")
def report_tab(request: Request, principal: Agreed) -> Response:
    """The report of seat holders, to download as CSV or JSON."""
    console = console_of(request)
    ledger = describe_ledger(console.store, console.now(), console.grace_period)
    return _tab(request, principal, "report", title="Report", counts=ledger.counts)


# --- rendering -------------------------------------------------------------------------------------------


def _tab(request: Request, principal: Principal, tab: str, **context: Any) -> Response:
    """A tab; only its live part when the pages' script asks for it."""
    context["fingerprint"] = summary(request, principal)["fingerprint"]
    if request.headers.get(FRAGMENT_HEADER):
        fragment = templates.TemplateResponse(
            request, f"{tab}_live.html", {"principal": principal, **context}
        )
        fragment.headers["X-Avtor-Fingerprint"] = context["fingerprint"]
        return fragment
    return _page(request, principal, f"{tab}.html", tab=tab, **context)


def _page(request: Request, principal: Principal, template: str, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        template,
        {"principal": principal, "csrf_token": principal.csrf_token, "csrf_field": CSRF_FIELD, **context},
    )


def _sign_in_form(request: Request, message: str | None, status_code: int, name: str = "") -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    response = templates.TemplateResponse(
        request,
        "sign_in.html",
        {"principal": None, "message": message, "name": name, "sign_in_token": token, "title": "Sign in"},
        status_code=status_code,
    )
    response.set_cookie(
        SIGN_IN_COOKIE, token, httponly=True, samesite="strict", secure=is_secure(request), path="/sign-in"
    )
    return response
