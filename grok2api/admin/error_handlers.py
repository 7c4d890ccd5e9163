"""How the admin's two apps answer a request that failed, each in its own format.

The HTML admin answers with a page in its own style (just the notice for htmx, which shows it as a
toast); the JSON admin API with its ``{success, message, code}`` envelope. Neither shows a stack
trace, and an unexpected error is logged once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..store.base import AdminSession, StoreUnavailable
from .context import Admin, page_context
from .guard import COOKIE_NAME, secure_headers
from .htmx import is_htmx
from .json_api import fail

log = logging.getLogger("grok2api.admin")

Answer = Callable[[Request], Awaitable[Response]]


class LastResort:
    """Answers an exception that no handler took with ``answer(request)``, after logging it.

    Starlette's own ``Exception`` handler re-raises once it has answered, so the gateway's outer
    handler would log the error a second time; this one stops it here instead."""

    def __init__(self, app: ASGIApp, answer: Answer) -> None:
        self.app = app
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            if started:
                raise  # too late for another answer: the server logs it and drops the connection
            request = Request(scope)
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            response = await self.answer(request)
            await response(scope, receive, send)


async def client_gone(request: Request, exc: Exception) -> Response:
    """The client closed the connection while its request body was still arriving: nobody to answer."""
    log.info("client went away while sending %s %s", request.method, request.url.path)
    return Response(status_code=499)


def _describe(request: Request, exc: HTTPException) -> str:
    if exc.status_code == 404:
        return f"There is nothing at {request.url.path}."
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return f"{request.method} is not allowed on {request.url.path}; use {allowed}."
    return str(exc.detail)


class PageErrors:
    """The HTML admin's error pages: ``error.html``, which extends the admin's ``base.html``."""

    def __init__(self, admin: Admin) -> None:
        self.admin = admin

    async def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        # A signed-in user keeps their name and the sign-out button (the session is read, not renewed).
        session = await self.admin.auth.session(request.cookies.get(COOKIE_NAME))
        title = "Page not found" if exc.status_code == 404 else HTTPStatus(exc.status_code).phrase
        response = self._render(request, exc.status_code, title, _describe(request, exc), session)
        response.headers.update(exc.headers or {})  # the Allow of a 405
        return response

    async def server_error(self, request: Request) -> Response:
        # Signed out on purpose: reading the session needs the store, which may be what failed.
        message = "The admin hit an internal error; it has been logged."
        return self._render(request, 500, "Something went wrong", message, None)

    async def store_unavailable(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StoreUnavailable)
        message = "The admin cannot reach the gateway's store right now; this page works again once it answers."
        response = self._render(request, 503, "Store unavailable", message, None)  # signed out: no store to ask
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    def _render(
        self, request: Request, status: int, title: str, message: str, session: AdminSession | None
    ) -> Response:
        views = self.admin.views
        if is_htmx(request):
            body = views.page("_notice.html", message=message, error=True)
        else:
            context = page_context(self.admin, request, session)
            body = views.page("error.html", title=title, message=message, **context)
        return secure_headers(HTMLResponse(body, status_code=status))


async def json_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "INVALID_REQUEST")
    response = fail(exc.status_code, _describe(request, exc), code)
    response.headers.update(exc.headers or {})
    return response


async def json_server_error(request: Request) -> Response:
    return fail(500, "The admin API hit an internal error; it has been logged.", "INTERNAL_ERROR")


async def json_store_unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StoreUnavailable)
    response = fail(503, "The gateway cannot reach its store right now; retry shortly.", "STORE_UNAVAILABLE")
    response.headers["Retry-After"] = str(exc.retry_after)
    return response
