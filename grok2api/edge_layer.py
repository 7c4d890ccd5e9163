"""The one ASGI layer between the server and the app: what the edge does to every HTTP request as a whole.

It composes the jobs of their own modules: the request's id (``logs``), counting it in flight and refusing it while
the process drains, the deadline of its body (``traffic``), its list of work for after the response
(``after_response``), CORS on ``/v1`` (``edge.ApiCors``), a 500 page when the app fails, and the access line. A
request crosses one send wrapper and one receive wrapper for all of them: each layer of middleware costs every
message a call, and a separate middleware per job made five.

It sits outside Starlette's exception handling, so every answer carries its ``X-Request-ID``, a 500 page too.
CORS headers go on the app's answers only; the answers the layer makes itself (the drain's 503, the 408 for a
stalled body, the 500 page, a preflight's answer with its own CORS headers) have none added.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .after_response import RequestJobs
from .edge import ApiCors
from .logs import ACCESS, REQUEST_ID, log_access, request_id_from
from .traffic import PROBES, WATCH_DISCONNECT, BodyDeadline, Traffic, shutting_down, stalled_body
from .write_batching import flush_now

ErrorPage = Callable[[Request, Exception], Awaitable[Response]]


class EdgeLayer:
    """See the module docstring. ``on_error`` makes the answer to a request the app failed with an exception
    (which is then raised on, for the server to log); ``access_log`` writes the access line."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        traffic: Traffic,
        body_timeout: float,
        on_error: ErrorPage,
        access_log: bool = True,
    ) -> None:
        self.app = app
        self.traffic = traffic
        self.body_timeout = body_timeout
        self.on_error = on_error
        self.access_log = access_log
        self.cors = ApiCors()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given: bytes | None = None
        origin: bytes | None = None
        agent: bytes | None = None
        for name, value in scope["headers"]:  # the few headers the edge reads, in one pass
            if name == b"x-request-id":
                given = value if given is None else given
            elif name == b"origin":
                origin = value if origin is None else origin
            elif name == b"user-agent":
                agent = value  # the last one, as hypercorn's access line had it
        request_id = request_id_from(None if given is None else given.decode("latin-1"))
        path: str = scope["path"]
        answer = _Answer(send, request_id, self.cors if self.cors.applies(path) else None, origin is not None)
        if self.access_log and ACCESS.isEnabledFor(logging.INFO):
            answer.access = _AccessLine(scope, "-" if agent is None else agent.decode("latin-1"))
        token = REQUEST_ID.set(request_id)
        try:
            if path in PROBES:  # always answered, never counted, never timed
                await self._serve(scope, receive, answer, BodyDeadline(receive, None))
            elif self.traffic.draining:
                # The body is read first (bounded by its deadline): a socket closed with a request still arriving is
                # reset, and the client would lose this answer and learn only that the connection broke.
                await _discard_body(BodyDeadline(receive, self.body_timeout))
                await shutting_down(path)(scope, receive, answer.send_own)
            else:
                self.traffic.enter()
                body = BodyDeadline(receive, self.body_timeout, scope.get("extensions", {}).get(WATCH_DISCONNECT))
                try:
                    await self._serve(scope, receive, answer, body)
                finally:
                    self.traffic.leave()
        finally:
            if answer.access is not None and not answer.access.written:
                answer.access.unfinished(answer.started or answer.client_left)
            REQUEST_ID.reset(token)

    async def _serve(self, scope: Scope, receive: Receive, answer: _Answer, body: BodyDeadline) -> None:
        """The app's answer (or the layer's own), then the request's after-response work."""
        jobs = RequestJobs()
        answer.body = body
        try:
            await self._answer(scope, receive, answer, body)
        finally:
            body.close()
            pending = jobs.close()
            if pending is not None:
                await pending

    async def _answer(self, scope: Scope, receive: Receive, answer: _Answer, body: BodyDeadline) -> None:
        try:
            if answer.cors is not None and answer.has_origin and scope["method"] == "OPTIONS":
                preflight = self.cors.preflight(scope)
                if preflight is not None:
                    await preflight(scope, receive, answer.send_own)
                    return
            await self.app(scope, body, answer.send)
        except Exception as exc:
            if not answer.started:  # nothing has reached the client: a 500 page can
                page = await self.on_error(Request(scope), exc)
                await page(scope, receive, answer.send_own)
            raise
        if body.expired and not answer.started:
            await stalled_body(scope["path"], self.body_timeout)(scope, receive, answer.send_own)


async def _discard_body(body: BodyDeadline) -> None:
    """Read a request's body to its end (or until it stalls past its deadline or the client leaves), unused."""
    while True:
        message = await body()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


class _AccessLine:
    """What one request's access line needs, and whether it was written."""

    __slots__ = ("scope", "agent", "started_at", "status", "length", "written")

    def __init__(self, scope: Scope, agent: str) -> None:
        self.scope = scope
        self.agent = agent
        self.started_at = time.perf_counter()
        self.status = "-"
        self.length = "-"
        self.written = False

    def response(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.status = str(status)
        self.length = next((v.decode("latin-1") for k, v in reversed(headers) if k.lower() == b"content-length"), "-")

    def write(self) -> None:
        self.written = True
        log_access(self.scope, self.status, self.length, time.perf_counter() - self.started_at, self.agent)

    def unfinished(self, seen: bool) -> None:
        """The line of a request whose answer was never completed: nothing is known of it once the client left or
        the answer broke off; an app that answered nothing at all is answered 500 by the server."""
        if seen:
            self.status = self.length = "-"
        else:
            self.status, self.length = "500", "-"
        self.write()


class _Answer:
    """One request's way out: the send wrapper every message of its answer goes through."""

    __slots__ = ("_send", "_id_header", "cors", "has_origin", "started", "access", "body")

    def __init__(self, send: Send, request_id: str, cors: ApiCors | None, has_origin: bool) -> None:
        self._send = send
        self._id_header = (b"x-request-id", request_id.encode("latin-1"))
        self.cors = cors
        self.has_origin = has_origin
        self.started = False
        self.access: _AccessLine | None = None
        self.body: BodyDeadline | None = None

    @property
    def client_left(self) -> bool:
        return self.body is not None and self.body.client_left

    async def send(self, message: Message) -> None:
        """The app's messages: with CORS headers on /v1, and none once the body deadline answered for the app."""
        if not self.started and self.body is not None and self.body.expired:
            return  # the app's answer to a client it believes gone: the 408 goes instead
        await self._deliver(message, self.cors)

    async def send_own(self, message: Message) -> None:
        """The layer's own answers (no CORS headers added)."""
        await self._deliver(message, None)

    async def _deliver(self, message: Message, cors: ApiCors | None) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))  # the response's own list is not changed
            if cors is not None:
                cors.add_headers(headers, self.has_origin)
            headers.append(self._id_header)
            message["headers"] = headers
            self.started = True
            if self.access is not None:
                self.access.response(message["status"], headers)
            await self._send(message)
            return
        await self._send(message)
        access = self.access
        if access is not None and message["type"] == "http.response.body" and not message.get("more_body", False):
            if not access.written:
                flush_now()  # the answer's last bytes leave before the line is formatted and written
                access.write()
