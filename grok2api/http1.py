"""The gateway's own HTTP/1.1 server: one ``asyncio.Protocol`` per connection, requests parsed by httptools
(llhttp, in C), the ASGI app called directly.

hypercorn parses with h11 (pure Python) and passes every request and every response message through four
layers of events and coroutines (its TCP server, its protocol wrapper, h11, its stream), validating each
response's headers twice: some 0.3 ms of CPU per request around a trivial app, a third of what the gateway
spends on a turn of its own. Here a request costs one parse in C, one scope and one task; a response is
framed in one pass (``Content-Length`` as given, else chunked) and written through the same per-loop-turn
batching as before (``write_batching``). ``serve.serve_worker`` uses this server for plain-HTTP listeners when
``GROK2API_HTTP_SERVER=builtin`` (httptools comes with the ``fast`` extra); hypercorn serves TLS, and by default.

What it keeps of hypercorn's behaviour as ``serve`` set it up: a connection must send a whole request head
within ``header_timeout`` seconds of being opened or of its last answer (the same timer closes an idle
keep-alive connection); a head larger than ``MAX_HEAD_BYTES`` is answered 431 and one that does not parse 400,
then the connection is closed; at most ``max_connections`` connections per worker (beyond, a short 503); a
request body is read only as the app asks for it (reading pauses past ``BODY_HIGH_WATER`` bytes), and a client
that reads slowly pauses its own response only; pipelined requests are answered in order; an app that fails
before answering gets a 500. Upgrades (WebSocket, h2c) are not taken: the request is answered as plain
HTTP/1.1 and the connection closed after it.
"""

from __future__ import annotations

import asyncio
import email.utils
import http
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from socket import socket
from typing import Any
from urllib.parse import unquote

import httptools

from .traffic import WATCH_DISCONNECT
from .write_batching import BatchingWriter, serving_writer

log = logging.getLogger("grok2api.serve")

MAX_HEAD_BYTES = 16 * 1024  # request line and headers (hypercorn's h11_max_incomplete_size)
BODY_HIGH_WATER = 256 * 1024  # request body bytes held for the app before the connection stops reading
BUSY = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
REFUSAL_LOG_INTERVAL = 60.0
ASGI = {"version": "3.0", "spec_version": "2.3"}

Message = MutableMapping[str, Any]
App = Callable[[Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in http.HTTPStatus}
_DISCONNECT = {"type": "http.disconnect"}


def status_line(status: int) -> bytes:
    return _STATUS_LINES.get(status) or f"HTTP/1.1 {status} \r\n".encode()


class _Date:
    second = -1
    value = b""


def http_date() -> bytes:
    """Now as an HTTP date (``Sun, 06 Nov 1994 08:49:37 GMT``), formatted at most once a second."""
    now = int(time.time())
    if now != _Date.second:
        _Date.second, _Date.value = now, email.utils.formatdate(now, usegmt=True).encode("ascii")
    return _Date.value


def _simple(status: int) -> bytes:
    """An empty answer that closes the connection (a request that cannot be read, an app that failed)."""
    return status_line(status) + b"content-length: 0\r\ndate: " + http_date() + b"\r\nconnection: close\r\n\r\n"


class _HeadTooLarge(Exception):
    pass


class _BadResponse(RuntimeError):
    """The app sent something HTTP/1.1 cannot carry (a header with a line break, more body than it declared)."""


class ConnectionLimit:
    """Open connections of one worker, against the cap (``GROK2API_MAX_CONNECTIONS``)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.open = 0
        self.refused = 0
        self._logged_at = -REFUSAL_LOG_INTERVAL

    def note_refusal(self) -> None:
        """One connection refused; logged at most once a minute."""
        self.refused += 1
        now = time.monotonic()
        if now - self._logged_at >= REFUSAL_LOG_INTERVAL:
            self._logged_at = now
            log.warning(
                "refusing connections: %d are open, the most this worker takes (GROK2API_MAX_CONNECTIONS); "
                "%d refused so far",
                self.open,
                self.refused,
            )


class Http1Server:
    """What the connections of one worker share: the app, the limits, the connections open now, the tasks of
    the requests under way."""

    def __init__(
        self, app: App, *, header_timeout: float, limit: ConnectionLimit, state: dict[str, Any] | None = None
    ) -> None:
        self.app = app
        self.header_timeout = header_timeout
        self.limit = limit
        self.state = state if state is not None else {}
        self.connections: set[Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = False

    def connection(self) -> Connection:
        return Connection(self)

    def stop_accepting_requests(self) -> None:
        """From now on every answer closes its connection, and idle connections are closed at once."""
        self.stopping = True
        for conn in list(self.connections):
            conn.close_if_idle()

    async def wait_closed(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the connections to finish; then close the rest and cancel what runs."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.connections and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.abort()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)


class _Cycle:
    """One request on a connection and the response to it: the ``receive`` and ``send`` the app is given."""

    __slots__ = (
        "conn",
        "scope",
        "keep_alive",
        "expect_continue",
        "chunks",
        "buffered",
        "body_done",
        "handed",
        "waiter",
        "started",
        "done",
        "disconnected",
        "no_body",
        "chunked",
        "remaining",
        "on_gone",
    )

    def __init__(self, conn: Connection, scope: dict[str, Any], keep_alive: bool, expect_continue: bool) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.body_done = False
        self.handed = False  # the app has been given the end of the body
        self.waiter: asyncio.Future[None] | None = None
        self.started = False
        self.done = False
        self.disconnected = False
        self.no_body = False
        self.chunked = False
        self.remaining = -1  # bytes of a Content-Length body still to send (-1: not framed by length)
        self.on_gone: Callable[[], object] | None = None

    # -- the request side ----------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > BODY_HIGH_WATER:
            self.conn.pause_reading()
        self._wake()

    def end_of_body(self) -> None:
        self.body_done = True
        self._wake()

    def gone(self) -> None:
        self.disconnected = True
        self._wake()
        on_gone, self.on_gone = self.on_gone, None
        if on_gone is not None:
            on_gone()

    def watch(self, on_gone: Callable[[], object] | None) -> None:
        """The scope's ``WATCH_DISCONNECT`` extension (see ``traffic.py``)."""
        if on_gone is not None and self.disconnected:
            asyncio.get_running_loop().call_soon(on_gone)
            return
        self.on_gone = on_gone

    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def receive(self) -> Message:
        while True:
            if self.chunks:
                body = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
                self.chunks.clear()
                self.buffered = 0
                self.handed = self.body_done
                self.conn.resume_reading()
                return {"type": "http.request", "body": body, "more_body": not self.body_done}
            if self.body_done and not self.handed:
                self.handed = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if self.disconnected or self.done:
                return _DISCONNECT  # (once the whole body is in, what is left to hear is the client leaving)
            if self.expect_continue and not self.started:
                self.expect_continue = False
                self.conn.write(CONTINUE)
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter

    # -- the response side ---------------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            if not self.started or self.done:
                raise RuntimeError("http.response.body sent before http.response.start or after the response ended")
            if self.disconnected:
                return
            body = message.get("body", b"")
            more = message.get("more_body", False)
            conn = self.conn
            if body and not self.no_body:
                if self.chunked:
                    conn.write(b"%x\r\n%b\r\n" % (len(body), body))
                else:
                    if self.remaining >= 0:
                        self.remaining -= len(body)
                        if self.remaining < 0:
                            raise _BadResponse("the response body is longer than its Content-Length")
                    conn.write(body)
            if not more:
                if self.chunked:
                    conn.write(b"0\r\n\r\n")
                self._finish()
            elif conn.write_paused:
                await conn.drained()
        elif kind == "http.response.start":
            if self.started:
                raise RuntimeError("http.response.start sent twice")
            self.started = True
            if self.disconnected:
                return
            self.conn.write(self._head(int(message["status"]), message.get("headers") or ()))
        # Other messages (trailers, pushes, early hints, zero-copy) are extensions this scope did not offer.

    def _head(self, status: int, headers: Sequence[tuple[bytes, bytes]]) -> bytes:
        lines = [status_line(status)]
        length: bytes | None = None
        for name, value in headers:
            lowered = name.lower()
            if lowered == b"content-length":
                length = value  # written below, once the framing is chosen
                continue
            elif lowered == b"transfer-encoding":
                continue  # the framing is the server's to choose
            elif lowered == b"connection":
                if b"close" in value.lower():
                    self.keep_alive = False
                continue
            if b"\n" in value or b"\r" in value or b"\n" in name or b"\r" in name or b":" in name:
                raise _BadResponse(f"the response header {name!r} cannot be sent")
            lines.append(b"%b: %b\r\n" % (name, value))
        method = self.scope["method"]
        if method == "HEAD" or status < 200 or status in (204, 304):
            self.no_body = True
            if length is not None:
                lines.append(b"content-length: %b\r\n" % length)
        elif length is not None:
            self.remaining = int(length)
            lines.append(b"content-length: %b\r\n" % length)
        elif self.scope["http_version"] == "1.1":
            self.chunked = True
            lines.append(b"transfer-encoding: chunked\r\n")
        else:
            self.keep_alive = False  # an HTTP/1.0 body without a length ends with the connection
        if self.conn.server.stopping:
            self.keep_alive = False
        lines.append(b"date: %b\r\n" % http_date())
        if not self.keep_alive:
            lines.append(b"connection: close\r\n")
        elif self.scope["http_version"] == "1.0":
            lines.append(b"connection: keep-alive\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)

    def _finish(self) -> None:
        if self.remaining > 0:
            self.keep_alive = False  # shorter than announced: the client can only tell from the connection closing
        self.done = True
        self._wake()
        self.conn.finished(self)

    async def run(self, app: App) -> None:
        conn = self.conn
        with serving_writer(conn.writer):
            try:
                await app(self.scope, self.receive, self.send)
            except BaseException as exc:
                if self.done:
                    # A whole answer (the edge's 500 page) went out: the app's error handler logged this already,
                    # with the request id; Starlette re-raises only so that a server may log it.
                    log.debug("the app raised after answering %s", self.scope["path"], exc_info=True)
                elif not isinstance(exc, asyncio.CancelledError):
                    log.exception("the app failed while answering %s %s", self.scope["method"], self.scope["path"])
                self._fail()
                if not isinstance(exc, Exception):
                    raise
            else:
                if not self.done:
                    if not self.started:
                        log.error("the app returned without answering %s %s", self.scope["method"], self.scope["path"])
                    self._fail()

    def _fail(self) -> None:
        """The app stopped without a whole response: a 500 if nothing was sent yet, else the connection closes."""
        if self.done or self.disconnected:
            return
        self.keep_alive = False
        if not self.started:
            self.started = True
            self.conn.write(_simple(500))
        self.done = True
        self._wake()
        self.conn.finished(self)


class Connection(asyncio.Protocol):
    """One client connection: parses what arrives, runs one request at a time, writes the answers."""

    def __init__(self, server: Http1Server) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.writer: BatchingWriter  # set on connection_made
        self.client: tuple[str, int] | None = None
        self.local: tuple[str, int] | None = None
        self.current: _Cycle | None = None  # being answered
        self.reading: _Cycle | None = None  # its request still arriving
        self.waiting: deque[_Cycle] = deque()  # pipelined behind the current one
        self.write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._read_paused = False
        self._closed = False
        self._counted = False  # holds one of the limit's places
        self._idle: asyncio.TimerHandle | None = None
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_size = 0

    # -- the connection --------------------------------------------------------------------------------

    def connection_made(self, base: asyncio.BaseTransport) -> None:
        transport: Any = base  # a stream transport (uvloop's is not a subclass of asyncio.Transport)
        self.transport = transport
        server = self.server
        limit = server.limit
        if limit.open >= limit.cap or server.stopping:
            self._closed = True
            transport.write(BUSY)
            transport.close()
            limit.note_refusal()
            return
        limit.open += 1
        self._counted = True
        server.connections.add(self)
        self.writer = BatchingWriter(transport)
        self.client = _address(transport.get_extra_info("peername"))
        self.local = _address(transport.get_extra_info("sockname"))
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._counted:
            self._counted = False
            self.server.limit.open -= 1
            self.server.connections.discard(self)
        self._disarm_idle()
        for cycle in (self.current, self.reading, *self.waiting):
            if cycle is not None:
                cycle.gone()
        self.waiting.clear()
        self._release_drain()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._release_drain()

    def _release_drain(self) -> None:
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    async def drained(self) -> None:
        """Wait while the client is not taking what was written (only its own response waits)."""
        if self.write_paused and not self._closed:
            if self._drain is None:
                self._drain = self.loop.create_future()
            await self._drain

    def write(self, data: bytes) -> None:
        if not self._closed:
            self.writer.write(data)

    def pause_reading(self) -> None:
        if not self._read_paused and self.transport is not None and not self._closed:
            self._read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._read_paused and not self.waiting and self.transport is not None and not self._closed:
            self._read_paused = False
            self.transport.resume_reading()

    def close_if_idle(self) -> None:
        if self.current is None and self.reading is None:
            self._close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _close(self) -> None:
        if not self._closed and self.transport is not None:
            self._closed = True
            self.writer.flush()
            self.transport.close()

    def _arm_idle(self) -> None:
        self._idle = self.loop.call_later(self.server.header_timeout, self._idle_expired)

    def _disarm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _idle_expired(self) -> None:
        self._idle = None
        if self.current is None:
            self._close()  # no whole request head in time: a slow or idle client

    # -- parsing ---------------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # The request is answered as plain HTTP/1.1; what follows it is another protocol's: close after.
            for cycle in (self.current, *self.waiting):
                if cycle is not None:
                    cycle.keep_alive = False
            self.pause_reading()
        except httptools.HttpParserError as exc:
            cause = exc.__context__  # what a callback raised (httptools wraps it)
            if isinstance(cause, _HeadTooLarge):
                self._refuse(431)
            elif isinstance(exc, httptools.HttpParserCallbackError) and cause is not None:
                log.error("could not take a request", exc_info=cause)
                self._refuse(500)
            else:
                self._refuse(400)

    def _refuse(self, status: int) -> None:
        """A request that cannot be read: answered (unless another answer is under way) and the connection closed."""
        if self.current is None:
            self.write(_simple(status))
        self._close()

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._head_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)
        if self._head_size > MAX_HEAD_BYTES:
            raise _HeadTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        if self._head_size > MAX_HEAD_BYTES:
            raise _HeadTooLarge
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self._disarm_idle()
        parser = self.parser
        target = self._url
        if target[:1] == b"/":
            path, _, query = target.partition(b"?")
        elif target == b"*":
            path, query = target, b""
        else:  # absolute form (``http://host/path``), as a proxy is sent
            parsed = httptools.parse_url(target)
            path, query = parsed.path or b"/", parsed.query or b""
        expect_continue = False
        for name, value in self._headers:
            if name == b"expect" and value.lower() == b"100-continue":
                expect_continue = True
        version = parser.get_http_version()
        extensions: dict[str, Any] = {}
        scope = {
            "type": "http",
            "asgi": ASGI,
            "http_version": version,
            "server": self.local,
            "client": self.client,
            "scheme": "http",
            "method": parser.get_method().decode("ascii"),
            "root_path": "",
            "path": unquote(path.decode("latin-1")) if b"%" in path else path.decode("latin-1"),
            "raw_path": path,
            "query_string": query,
            "headers": self._headers,
            "state": self.server.state.copy(),
            "extensions": extensions,
        }
        keep_alive = parser.should_keep_alive() and not self.server.stopping
        cycle = _Cycle(self, scope, keep_alive, expect_continue and version == "1.1")
        extensions[WATCH_DISCONNECT] = cycle.watch
        self.reading = cycle
        if self.current is None:
            self._start(cycle)
        else:
            self.waiting.append(cycle)
            self.pause_reading()  # one request answered at a time: the next ones wait in the socket

    def on_body(self, body: bytes) -> None:
        if self.reading is not None:
            self.reading.feed(body)

    def on_message_complete(self) -> None:
        if self.reading is not None:
            self.reading.end_of_body()
            self.reading = None

    # -- the requests ----------------------------------------------------------------------------------

    def _start(self, cycle: _Cycle) -> None:
        self.current = cycle
        task = self.loop.create_task(cycle.run(self.server.app))
        tasks = self.server.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def finished(self, cycle: _Cycle) -> None:
        """``cycle``'s response is whole: the connection takes the next request, waits for one, or closes."""
        if cycle is not self.current:
            return
        self.current = None
        if self._closed:
            return
        if not cycle.keep_alive or not cycle.body_done or self.server.stopping:
            self._close()  # (a request whose body is still arriving cannot be followed by another on this connection)
            return
        if self.waiting:
            self._start(self.waiting.popleft())
            if not self.waiting:
                self.resume_reading()
        else:
            self._arm_idle()
            self.resume_reading()


def _address(value: Any) -> tuple[str, int] | None:
    if isinstance(value, tuple) and len(value) >= 2:
        return str(value[0]), int(value[1])
    return None


# -- lifespan and serving -----------------------------------------------------------------------------


class Lifespan:
    """The app's ASGI lifespan: started before the first connection is taken, shut down after the last."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._supported = True

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": ASGI, "state": self.state}
        try:
            await self.app(scope, self._inbox.get, self._outbox.put)
        except BaseException:
            if self._supported:
                await self._outbox.put({"type": "lifespan.failed", "message": "the app's lifespan raised"})
            raise
        finally:
            await self._outbox.put({"type": "lifespan.ended"})

    async def startup(self) -> None:
        self._task = asyncio.create_task(self._run())
        await self._inbox.put({"type": "lifespan.startup"})
        answer = await self._outbox.get()
        if answer["type"] != "lifespan.startup.complete":
            raise RuntimeError(answer.get("message") or "the app did not start")

    async def shutdown(self) -> None:
        if self._task is None or self._task.done():
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        answer = await self._outbox.get()
        if answer["type"] == "lifespan.shutdown.failed":
            log.error("the app's shutdown failed: %s", answer.get("message", ""))
        await asyncio.wait([self._task], timeout=5)


async def serve(
    app: App,
    sockets: Sequence[socket],
    shutdown_trigger: Callable[[], Awaitable[Any]],
    *,
    header_timeout: float,
    limit: ConnectionLimit,
    backlog: int = 2048,
    close_timeout: float = 2.0,
) -> None:
    """Serve ``app`` on the listening ``sockets`` until ``shutdown_trigger`` returns; then close the listeners and
    idle connections, give the others ``close_timeout`` seconds to finish, and shut the app down."""
    lifespan = Lifespan(app)
    await lifespan.startup()
    server = Http1Server(app, header_timeout=header_timeout, limit=limit, state=lifespan.state)
    loop = asyncio.get_running_loop()
    listeners = [await loop.create_server(server.connection, sock=sock, backlog=backlog) for sock in sockets]
    for sock in sockets:
        host, port = sock.getsockname()[:2]
        log.info("Running on http://%s:%d (CTRL + C to quit)", f"[{host}]" if ":" in host else host, port)
    try:
        await shutdown_trigger()
    finally:
        for listener in listeners:
            listener.close()
        server.stop_accepting_requests()
        await server.wait_closed(close_timeout)
        await lifespan.shutdown()
