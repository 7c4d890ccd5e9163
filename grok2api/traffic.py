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
from collections.abc import Callable
from functools import partial
from typing import Any

import msgspec
from starlette.responses import HTMLResponse, Response
from starlette.types import Message, Receive

from .errors import GatewayError

# A scope extension of the built-in server (``http1.py``): ``watch(on_gone)`` has ``on_gone()`` called when the
# client disconnects (soon, if it has), ``watch(None)`` stops that; who waits for a disconnect needs no task reading
# ``receive`` for it.
WATCH_DISCONNECT = "grok2api.watch_disconnect"
WatchDisconnect = Callable[[Callable[[], object] | None], None]
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


class BodyDeadline:
    """One request's ``receive``, timed while its body is arriving (see the module docstring).

    A wait for the next piece of the body ends after ``timeout`` seconds; the request then reads as a client that
    left (``http.disconnect``, ``expired`` set) and the edge answers 408 for it. One timer serves the whole body,
    not one per wait: it is armed at the first wait and, when it fires, looks at the wait under way (none, or one
    younger than ``timeout``: it sets itself again). The body in, the timer is gone and waits are not timed.
    Also notes a client that really left (``client_left``), for the access line."""

    __slots__ = (
        "_receive",
        "timeout",
        "expired",
        "client_left",
        "_open",
        "_timer",
        "_task",
        "_since",
        "_fired",
        "_server_watch",
    )

    def __init__(self, receive: Receive, timeout: float | None, server_watch: WatchDisconnect | None = None) -> None:
        """``server_watch``: the server's ``WATCH_DISCONNECT`` extension, where the request's scope has one."""
        self._receive = receive
        self._server_watch = server_watch
        self.timeout = timeout  # None: not timed (the probes)
        self.expired = False
        self.client_left = False
        self._open = timeout is not None
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[Any] | None = None  # the one waiting for the body now
        self._since = 0.0
        self._fired = False

    async def __call__(self) -> Message:
        if self.expired:
            return {"type": "http.disconnect"}
        if not self._open:  # the body is in: waiting for the client to leave is not timed
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.client_left = True
            return message
        loop = asyncio.get_running_loop()
        task = self._task = asyncio.current_task()
        assert task is not None and self.timeout is not None
        cancelling = task.cancelling()
        self._since = loop.time()
        if self._timer is None:
            self._timer = loop.call_at(self._since + self.timeout, self._check)
        try:
            message = await self._receive()
        except asyncio.CancelledError:
            if self._fired and task.uncancel() <= cancelling:
                # To the endpoint the client is gone: it stops, and the edge answers for it.
                self.expired = True
                self.close()
                return {"type": "http.disconnect"}
            raise
        finally:
            self._task = None
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.close()
            if message["type"] == "http.disconnect":
                self.client_left = True
        return message

    def _check(self) -> None:
        self._timer = None
        if not self._open:
            return
        loop = asyncio.get_running_loop()
        assert self.timeout is not None
        if self._task is None:  # between two waits: the next one has its whole timeout
            self._timer = loop.call_at(loop.time() + self.timeout, self._check)
        elif loop.time() >= self._since + self.timeout:
            self._fired = True
            self._task.cancel()
        else:
            self._timer = loop.call_at(self._since + self.timeout, self._check)

    def watch(self, on_gone: Callable[[], object]) -> Callable[[], None] | None:
        """Have ``on_gone()`` called once the client leaves, through the server's own notice: no task has to read
        ``receive`` for it. None (nothing is watched) where the server gives no notice or the body is not all in
        (its deadline is a way of leaving too); else what stops the watching."""
        server_watch = self._server_watch
        if server_watch is None or self._open or self.expired:
            return None

        def gone() -> None:
            self.client_left = True
            on_gone()

        server_watch(gone)
        return partial(server_watch, None)

    def close(self) -> None:
        """Time nothing more (the body is in, or the request is over)."""
        self._open = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def stalled_body(path: str, timeout: float) -> Response:
    message = f"The request body stopped arriving: nothing came for {timeout:g} s."
    return refusal(path, 408, message, "request_timeout")


def shutting_down(path: str) -> Response:
    message = "The gateway is shutting down; send the request again (another instance takes it)."
    return refusal(path, 503, message, "shutting_down", retry_after=1)
