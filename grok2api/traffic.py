"""What the edge does to client traffic as a whole, before any endpoint: it counts the requests in flight (so a
shutdown can wait for them), refuses new ones once the process is draining, and gives up on a request body that
stops arriving.

A request body must keep moving: ``body_timeout`` seconds without a byte and the request is answered 408 and its
connection closed. Only reading the body is timed. A client that sent its whole request and is now reading a long,
quiet answer is never cut for being silent (that is why the server has no read timeout of its own). The head of
a request has its own limit in the server (see ``serve``).
"""

from __future__ import annotations

import asyncio
import html

import msgspec
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import GatewayError

PROBES = frozenset({"/healthz", "/health", "/readyz"})  # always answered, never counted
_ADMIN_PAGES = ("/manage", "/login", "/logout", "/static")
_ENCODER = msgspec.json.Encoder()


class Traffic:
    """This process's client requests: how many are in flight, and whether it is draining for shutdown."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    def begin_drain(self) -> None:
        """From now on new requests are refused (503) and readiness fails; those in flight go on."""
        self.draining = True

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in flight, at most ``timeout`` seconds; True when none is left."""
        try:
            async with asyncio.timeout(timeout):
                while self.in_flight:
                    await self._idle.wait()
        except TimeoutError:
            return False
        return True

    def enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if not self.in_flight:
            self._idle.set()


def refusal(path: str, status: int, message: str, code: str, retry_after: int | None = None) -> Response:
    """An answer in the shape the API at ``path`` uses for errors: the admin API's JSON under /api, an HTML page
    for the admin's pages, the OpenAI envelope everywhere else. The connection is closed after it."""
    headers = {"Connection": "close"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if path == "/api" or path.startswith("/api/"):
        body = _ENCODER.encode({"success": False, "message": message, "code": code.upper()})
        return Response(body, status_code=status, media_type="application/json", headers=headers)
    if path.startswith(_ADMIN_PAGES):
        page = f"<!doctype html><title>grok2api</title><p>{html.escape(message)}</p>"
        return HTMLResponse(page, status_code=status, headers=headers)
    err = GatewayError(message, status=status, code=code, headers=headers)
    err.type = "service_unavailable" if status == 503 else "invalid_request_error"
    return Response(err.to_json(), status_code=status, media_type="application/json", headers=err.headers)


class TrafficGuard:
    """The ASGI middleware for ``Traffic`` and the body deadline (see the module docstring)."""

    def __init__(self, app: ASGIApp, traffic: Traffic, body_timeout: float) -> None:
        self.app = app
        self.traffic = traffic
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBES:
            await self.app(scope, receive, send)
            return
        if self.traffic.draining:
            message = "The gateway is shutting down; send the request again (another instance takes it)."
            await refusal(scope["path"], 503, message, "shutting_down", retry_after=1)(scope, receive, send)
            return
        self.traffic.enter()
        try:
            await self._serve(scope, receive, send)
        finally:
            self.traffic.leave()

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        body_open = True
        timed_out = False
        started = False

        async def timed_receive() -> Message:
            nonlocal body_open, timed_out
            if timed_out:
                return {"type": "http.disconnect"}
            if not body_open:
                return await receive()  # the body is in: waiting for the client to leave is not timed
            try:
                async with asyncio.timeout(self.body_timeout):
                    message = await receive()
            except TimeoutError:
                # To the endpoint the client is gone: it stops, and this middleware answers for it.
                timed_out = True
                return {"type": "http.disconnect"}
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_open = False
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if timed_out and not started:
                return  # the endpoint's answer to a client it believes gone
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, timed_receive, guarded_send)
        if timed_out and not started:
            message = f"The request body stopped arriving: nothing came for {self.body_timeout:g} s."
            await refusal(scope["path"], 408, message, "request_timeout")(scope, receive, send)
