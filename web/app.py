"""The console's ASGI application: pages, the API, static files, security headers, error answers."""

from __future__ import annotations

import logging
from importlib.resources import files
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config import SettingsError
from domain.access import SignInThrottled
from domain.agreement import AGREEMENT_TEXT, AGREEMENT_VERSION, AgreementNotAccepted
from domain.refusals import Refused
from web import api, pages
from web.api import LicenseNotFound
from web.auth import AgreementNeeded, CsrfRefused, NotSignedIn, csrf_checked
from web.console import Console, WorkersUnreachable

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"

# No inline script or style, nothing from elsewhere: the console works offline and an injected
# tag can run nothing.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ]
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


def create_app(console: Console) -> FastAPI:
    """The console and API over `console`'s installation."""
    app = FastAPI(
        title="Avtor License Manager API",
        version="1",
        description="The License Manager's operations as JSON: the same as the console and `avtorlm`. "
        "Authenticate with `Authorization: Bearer <token>` (`avtorlm token create NAME`).",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.console = console
    app.include_router(pages.public)
    app.include_router(pages.router)
    app.include_router(api.router)
    app.mount("/static", StaticFiles(directory=str(files("web") / "static")), name="static")

    @app.get(f"{API_PREFIX}/openapi.json", include_in_schema=False, dependencies=[Depends(csrf_checked)])
    def openapi() -> dict[str, Any]:
        return app.openapi()

    _answer_errors(app)
    app.add_middleware(SecurityHeaders)
    return app


class SecurityHeaders:
    """Adds the security headers to every answer; pages and API answers are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += SECURITY_HEADERS
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def _answer_errors(app: FastAPI) -> None:
    """Refusals become `{"ok": false, "message": ...}` for the API and a page or a redirect otherwise."""

    def is_api(request: Request) -> bool:
        return request.url.path.startswith(API_PREFIX)

    def refusal(request: Request, status: int, message: str, **extra: Any) -> Response:
        if is_api(request):
            return JSONResponse({"ok": False, "message": message, **extra}, status_code=status)
        return pages.templates.TemplateResponse(
            request, "problem.html", {"principal": None, "title": "Refused", "message": message}, status
        )

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, error: NotSignedIn) -> Response:
        if is_api(request) or request.method not in {"GET", "HEAD"}:
            answer = refusal(request, 401, str(error))
            answer.headers["WWW-Authenticate"] = 'Bearer realm="avtor"'
            return answer
        return RedirectResponse("/sign-in", status_code=303)

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, error: CsrfRefused) -> Response:
        return refusal(request, 403, str(error))

    @app.exception_handler(AgreementNeeded)
    async def agreement_needed(request: Request, error: AgreementNeeded) -> Response:
        if is_api(request):
            return refusal(
                request,
                409,
                str(AgreementNotAccepted()),
                agreement={"version": AGREEMENT_VERSION, "text": AGREEMENT_TEXT},
                accept_with=f"POST {API_PREFIX}/agreement",
            )
        return RedirectResponse("/agreement", status_code=303)

    @app.exception_handler(SignInThrottled)
    async def throttled(request: Request, error: SignInThrottled) -> Response:
        answer = refusal(request, 429, str(error))
        answer.headers["Retry-After"] = str(max(1, round(error.retry_after.total_seconds())))
        return answer

    @app.exception_handler(LicenseNotFound)
    async def no_such_license(request: Request, error: LicenseNotFound) -> Response:
        return refusal(request, 404, str(error))

    @app.exception_handler(Refused)
    async def refused(request: Request, error: Refused) -> Response:
        return refusal(request, 409, str(error))

    @app.exception_handler(WorkersUnreachable)
    async def workers_unreachable(request: Request, error: WorkersUnreachable) -> Response:
        return refusal(request, 503, str(error))

    @app.exception_handler(SettingsError)
    async def settings_missing(request: Request, error: SettingsError) -> Response:
        return refusal(request, 503, str(error))

    @app.exception_handler(SQLAlchemyError)
    async def store_failed(request: Request, error: SQLAlchemyError) -> Response:
        log.error("The store failed: %s", error)
        return refusal(
            request,
            503,
            "The store failed: check that the database server runs and AVTOR_DATABASE_URL, then try again; "
            "nothing was changed.",
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'] if part != 'body')}: {problem['msg']}"
            for problem in error.errors()
        )
        return refusal(request, 422, f"The request is not understood: {problems}.")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        message = {404: "There is no such page.", 405: "That method is not allowed here."}.get(
            error.status_code, str(error.detail)
        )
        answer = refusal(request, error.status_code, message)
        if not is_api(request) and isinstance(answer, HTMLResponse):
            answer.status_code = error.status_code
        return answer
