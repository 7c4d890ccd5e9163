"""Wrappers that put every admin endpoint behind its session check, CSRF check and security headers.

HTML pages use an HttpOnly SameSite=Strict cookie; every unsafe request must also carry the
session's CSRF token (``X-CSRF-Token``, set on ``<body hx-headers>`` for htmx, or a ``csrf_token``
form field) and must not come from another origin. The JSON API takes the bearer token from
``/api/login`` instead: no ambient credential, so no CSRF surface.
"""

from __future__ import annotations

import hmac
import html
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..edge import read_form
from ..errors import GatewayError
from ..store.base import AdminSession
from .context import Admin, Ctx
from .htmx import is_htmx, redirect
from .json_api import BadRequest
from .sessions import SESSION_TTL

COOKIE_NAME = "g2a_admin"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)

Endpoint = Callable[[Request], Awaitable[Response]]
PageHandler = Callable[[Ctx], Awaitable[Response]]
ApiHandler = Callable[[Request, Admin, AdminSession], Awaitable[Response]]


def protect(headers: MutableHeaders) -> None:
    """The headers every admin response carries, pages and static files alike: the CSP, no MIME
    sniffing, no framing, no referrer to other sites."""
    headers["Content-Security-Policy"] = CSP
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "same-origin"


def secure_headers(response: Response) -> Response:
    """A page's headers: ``protect``, and no caching unless the handler chose otherwise."""
    protect(response.headers)
    response.headers.setdefault("Cache-Control", "no-store")
    # The same URL renders a whole page or an htmx fragment: caches must keep them apart.
    response.headers["Vary"] = "HX-Request, Cookie"
    return response


def is_https(request: Request) -> bool:
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", httponly=True, samesite="strict", secure=is_https(request)
    )


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def same_origin(request: Request) -> bool:
    """Refuse unsafe requests a browser marks as coming from another site or origin.

    Browsers send Sec-Fetch-Site; without it, Origin is compared with Host (or X-Forwarded-Host,
    for proxies that rewrite Host). The CSRF token is checked as well either way."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    hosts = {request.headers.get("Host", "")}
    hosts.update(h.strip() for h in request.headers.get("X-Forwarded-Host", "").split(",") if h.strip())
    return origin != "null" and urlsplit(origin).netloc in hosts


def has_form(request: Request) -> bool:
    return request.headers.get("Content-Type", "").startswith(FORM_TYPES)


async def csrf_ok(request: Request, session: AdminSession) -> bool:
    given = request.headers.get(CSRF_HEADER, "")
    if not given and has_form(request):
        form = await request.form()
        field = form.get("csrf_token")
        given = field if isinstance(field, str) else ""
    return bool(given) and hmac.compare_digest(given.encode(), session.csrf.encode())


def forbidden(message: str, status: int = 403) -> Response:
    return secure_headers(HTMLResponse(f'<p class="error">{html.escape(message)}</p>', status_code=status))


def page(admin: Admin, handler: PageHandler) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        await admin.auth.ensure_credentials()
        token = request.cookies.get(COOKIE_NAME)
        session, renewed = await admin.auth.session_renewed(token)
        if session is None:
            if is_htmx(request):
                # A plain 401 would fail silently in the page: send the browser to the sign-in form.
                return secure_headers(redirect(admin.views.url("login"), status=401))
            if request.method in SAFE_METHODS:
                return secure_headers(RedirectResponse(admin.views.url("login"), status_code=303))
            return forbidden("Not signed in.")
        try:
            response = await _checked(request, admin, session, handler)
        finally:
            await request.close()  # closes an uploaded form's temporary files (Starlette leaves them open)
        if renewed and token and not _sets_cookie(response, COOKIE_NAME):
            # The store now keeps the session for another SESSION_TTL: so must the browser.
            set_cookie(response, request, COOKIE_NAME, token, max_age=int(SESSION_TTL))
        return secure_headers(response)

    return endpoint


async def _checked(request: Request, admin: Admin, session: AdminSession, handler: PageHandler) -> Response:
    """``handler``'s answer, once a state-changing request has passed the origin, form and CSRF checks."""
    if request.method not in SAFE_METHODS:
        if not same_origin(request):
            return forbidden("Cross-origin request refused.")
        if has_form(request):
            try:
                await read_form(request)  # kept for the handler; checked before anything reads a field
            except GatewayError as exc:  # unreadable (400) or too large (413)
                return forbidden(exc.message, exc.status)
        if not await csrf_ok(request, session):
            return forbidden("Missing or wrong CSRF token: reload the page and try again.")
    return await handler(Ctx(request, admin, session))


def _sets_cookie(response: Response, name: str) -> bool:
    """True when the handler already set or cleared the cookie (sign-out must win over renewal)."""
    prefix = f"{name}=".encode("latin-1")
    return any(k == b"set-cookie" and v.startswith(prefix) for k, v in response.raw_headers)


class SecureStatic:
    """Wraps the static files app so its responses carry the admin's CSP, nosniff and framing
    headers too (their caching headers stay: they hold no secrets)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                protect(MutableHeaders(scope=message))
            await send(message)

        await self.app(scope, receive, send_secured)


def api_error(status: int, message: str, code: str, **extra: object) -> JSONResponse:
    return JSONResponse({"success": False, "message": message, "code": code, **extra}, status_code=status)


def api(admin: Admin, handler: ApiHandler) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer ") or not header[7:].strip():
            return api_error(
                401, "Sign in with POST /api/login and send 'Authorization: Bearer <token>'.", "UNAUTHORIZED"
            )
        session = await admin.auth.session(header[7:].strip())
        if session is None:
            return api_error(401, "The session is invalid or has expired; sign in again.", "SESSION_INVALID")
        try:
            response = await handler(request, admin, session)
        except BadRequest as exc:
            response = exc.response()
        response.headers["Cache-Control"] = "no-store"
        return response

    return endpoint
