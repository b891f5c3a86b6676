"""Who is asking: a signed-in administrator (session cookie) or an API client (bearer token).

Every route but the sign-in page and the static files depends on `signed_in`; every
change made with a session also needs the session's CSRF token (`csrf_checked`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from fastapi import Depends, Request, Response

from domain.services.access import session_of, token_of
from domain.services.agreement import agreement_in_force
from web.console import Console

SESSION_COOKIE = "avtor_session"
SIGN_IN_COOKIE = "avtor_sign_in"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
# Requests the pages make on their own (polling) do not keep a session alive.
PASSIVE_HEADER = "X-Avtor-Poll"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class NotSignedIn(Exception):
    """The request carries no live session and no valid token."""

    def __init__(
        self, message: str = "Sign in first: this needs a signed-in administrator or an API token."
    ) -> None:
        super().__init__(message)


class CsrfRefused(Exception):
    """A change made with a session lacks the session's CSRF token."""

    def __init__(self) -> None:
        super().__init__(
            "The request lacks the console's CSRF token, so it was refused and nothing was changed: "
            "reload the page and try again (scripts send it in the X-CSRF-Token header)."
        )


class AgreementNeeded(Exception):
    """Nothing but the agreement works until it is accepted."""


@dataclass(frozen=True)
class Principal:
    """The administrator or API client making a request."""

    name: str
    actor: str
    csrf_token: str | None = None
    session_secret: str | None = None

    @property
    def is_session(self) -> bool:
        """Whether the request was made with a console session (not a token)."""
        return self.session_secret is not None


def console_of(request: Request) -> Console:
    """The console the app was made with."""
    console: Console = request.app.state.console
    return console


def signed_in(request: Request) -> Principal:
    """The principal of the request; NotSignedIn if there is none."""
    console = console_of(request)
    now = console.now()
    authorization = request.headers.get("Authorization", "")
    if authorization:
        scheme, _, bearer = authorization.partition(" ")
        token = token_of(bearer.strip(), console.access, now) if scheme.lower() == "bearer" else None
        if token is None:
            raise NotSignedIn(
                "The API token is unknown or revoked: create one with `avtorlm token create NAME`."
            )
        return Principal(token.name, f"{token.name} (API token)")
    secret = request.cookies.get(SESSION_COOKIE, "")
    if not secret:
        raise NotSignedIn()
    active = request.headers.get(PASSIVE_HEADER) is None
    session = session_of(secret, console.access, now, console.session_timeout, active=active)
    if session is None:
        raise NotSignedIn("The session has ended (signed out, or idle too long): sign in again.")
    name = session.administrator
    return Principal(name, f"{name} (console)", session.csrf_token, secret)


async def csrf_checked(request: Request, principal: Principal = Depends(signed_in)) -> Principal:  # noqa: B008
    """The principal, once a change made with a session has shown the session's CSRF token."""
    if request.method in SAFE_METHODS or principal.csrf_token is None:
        return principal
    given = request.headers.get(CSRF_HEADER)
    if given is None and _is_form(request):
        given = str((await request.form()).get(CSRF_FIELD) or "")
    if not given or not secrets.compare_digest(given, principal.csrf_token):
        raise CsrfRefused()
    return principal


def agreed(request: Request, principal: Principal = Depends(csrf_checked)) -> Principal:  # noqa: B008
    """The principal, once the license agreement in force has been accepted."""
    if agreement_in_force(console_of(request).store) is None:
        raise AgreementNeeded()
    return principal


def is_secure(request: Request) -> bool:
    """Whether the request came over HTTPS (directly, or through a trusted proxy that says so)."""
    return request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, secret: str) -> None:
    """Hand the browser its session: HttpOnly, SameSite=Strict, Secure over HTTPS."""
    response.set_cookie(
        SESSION_COOKIE, secret, httponly=True, samesite="strict", secure=is_secure(request), path="/"
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    """Make the browser forget its session."""
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=is_secure(request)
    )


def client_address(request: Request) -> str:
    """The caller's address (the proxy's client when a trusted proxy forwards it)."""
    return request.client.host if request.client else "unknown"


def _is_form(request: Request) -> bool:
    kind = request.headers.get("Content-Type", "")
    return kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data"))
