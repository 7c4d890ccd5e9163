"""The bench's HTTP/1.1 client of the gateway: keep-alive connections on one ``asyncio.Protocol`` each, answers
read with httptools (the parser the gateway's own server uses).

Why not aiohttp's client: the direct side of every row talks to the fake with the gateway's own WebSocket client, a
single protocol object with no request machinery around it. Measured through aiohttp's client, the gateway side
also paid that client's request and answer objects, connector and stream reader (about 0.4 ms of a c=1 turn
cold on a 2-vCPU machine, against 0.02 ms for the direct side to reach its socket), which is the client's cost,
not the gateway's. With a client of the same weight on each side the difference between them is the gateway's
(the bench reports aiohttp's figures for the c=1 rows beside them). Only what the bench needs: POST with a body,
answers framed by length or chunked, bodies read as they arrive.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, cast

import httptools

IDLE_SECONDS = 3.0  # an idle connection is dropped before the gateway's own 5 s keep-alive could close it under us
_MAX_IDLE = 1024


class HttpError(Exception):
    """The connection failed or the answer could not be read."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.keep_alive = False
        self.headers_done = False
        self.complete = False
        self.chunks: list[bytes] = []
        self.error: HttpError | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.idle_since = 0.0

    # -- the socket ---------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpError(f"unreadable answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.complete:
            self._fail(HttpError("the gateway closed the connection mid-answer"))
        self.transport = None

    # -- httptools' callbacks -----------------------------------------------------------------------------

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._wake()

    # -- the request --------------------------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing() and self.error is None

    def send(self, request: bytes) -> None:
        assert self.transport is not None
        self.parser = httptools.HttpResponseParser(self)
        self.status, self.keep_alive, self.headers_done, self.complete = 0, False, False, False
        self.chunks = []
        self.transport.write(request)

    async def wait(self) -> None:
        """Until something more of the answer arrived (or it failed)."""
        if self.error is not None:
            raise self.error
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None
        if self.error is not None:
            raise self.error

    def take(self) -> bytes:
        data = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks = []
        return data

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: HttpError) -> None:
        if self.error is None:
            self.error = error
        self._wake()
        self.close()


class Answer:
    """One answer, read as it arrives; leaving the ``async with`` gives the connection back once the answer is
    whole, else closes it."""

    def __init__(self, client: HttpClient, conn: _Connection) -> None:
        self.client, self.conn = client, conn

    @property
    def status(self) -> int:
        return self.conn.status

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's pieces as they arrive (de-chunked), until it is whole."""
        conn = self.conn
        while True:
            if conn.chunks:
                yield conn.take()
            elif conn.complete:
                return
            else:
                await conn.wait()

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    async def __aenter__(self) -> Answer:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.client.release(self.conn)


class HttpClient:
    """POSTs to one ``host:port``, over connections kept between requests."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[_Connection] = []
        self.host_header = f"{host}:{port}".encode("ascii")

    async def post(self, path: str, body: bytes, content_type: str = "application/json") -> Answer:
        """Send the request; return once the answer's status line and headers are in."""
        head = b"POST %b HTTP/1.1\r\nHost: %b\r\nContent-Type: %b\r\nContent-Length: %d\r\n\r\n" % (
            path.encode("ascii"),
            self.host_header,
            content_type.encode("ascii"),
            len(body),
        )
        conn = await self._connection()
        conn.send(head + body)
        try:
            while not conn.headers_done:
                await conn.wait()
        except BaseException:
            conn.close()
            raise
        return Answer(self, conn)

    async def _connection(self) -> _Connection:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            if conn.usable and now - conn.idle_since < IDLE_SECONDS:
                return conn
            conn.close()
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await loop.create_connection(_Connection, self.host, self.port)
        except OSError as exc:
            raise HttpError(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        return protocol

    def release(self, conn: _Connection) -> None:
        if conn.complete and conn.keep_alive and conn.usable and len(self.idle) < _MAX_IDLE:
            conn.idle_since = time.monotonic()
            self.idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()
