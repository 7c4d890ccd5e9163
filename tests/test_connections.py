"""``connections``: the connections of ``grok2api serve`` under a real hypercorn: a response leaves in one send,
a stream's headers with its first frame (``write_batching``), and the keep-alive watch is a timer that still
closes an idle connection, keeps a busy one, and lets a shutdown close idle ones at once (``keep_alive``)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from hypercorn.asyncio import run, serve
from hypercorn.config import Config
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from grok2api import connections
from grok2api.sse import EventStream


async def _home(request: Request) -> Response:
    return JSONResponse({"ok": True, "pad": "x" * 100})


async def _slow(request: Request) -> Response:
    await asyncio.sleep(float(request.query_params["seconds"]))
    return JSONResponse({"ok": True})


async def _burst(request: Request) -> Response:
    async def frames() -> AsyncIterator[bytes]:
        for i in range(3):
            yield f"data: {i}\n\n".encode()  # all ready at once

    return EventStream(frames())


async def _stream(request: Request) -> Response:
    async def frames() -> AsyncIterator[bytes]:
        for i in range(3):
            if i:
                await asyncio.sleep(0.02)  # each frame in its own loop turn
            yield f"data: {i}\n\n".encode()

    return StreamingResponse(frames(), media_type="text/event-stream")


class Served:
    """A hypercorn server with ``connections`` installed, on a loopback port; what it wrote, and its stop switch."""

    def __init__(self, url: str, sent: list[bytes], stop: asyncio.Event, task: asyncio.Future[Any]) -> None:
        self.url, self.sent, self.stop, self.task = url, sent, stop, task
        self.host, self.port = "127.0.0.1", int(url.rsplit(":", 1)[1])


@contextlib.asynccontextmanager
async def _served(
    monkeypatch: pytest.MonkeyPatch, keep_alive_timeout: float = 5.0, graceful_timeout: float = 5.0
) -> AsyncIterator[Served]:
    monkeypatch.setitem(vars(run), "TCPServer", vars(run)["TCPServer"])  # the install below is undone after the test
    connections.install()
    connections.install()  # once is enough; twice changes nothing
    assert getattr(vars(run)["TCPServer"], "batches_writes", False)
    sent: list[bytes] = []
    real_write = asyncio.StreamWriter.write

    def spy(self: asyncio.StreamWriter, data: bytes) -> None:
        sent.append(bytes(data))
        real_write(self, data)

    monkeypatch.setattr(asyncio.StreamWriter, "write", spy)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = config.errorlog = None
    config.keep_alive_timeout = keep_alive_timeout
    config.graceful_timeout = graceful_timeout
    app = Starlette(
        routes=[Route("/", _home), Route("/stream", _stream), Route("/slow", _slow), Route("/burst", _burst)]
    )
    stop = asyncio.Event()
    task = asyncio.ensure_future(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            try:
                async with http.get(url):
                    break
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    sent.clear()
    try:
        yield Served(url, sent, stop, task)
    finally:
        stop.set()
        await asyncio.wait_for(task, graceful_timeout + 10)


@pytest.fixture
async def batching_server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[str, list[bytes]]]:
    async with _served(monkeypatch) as served:
        yield served.url, served.sent


async def test_a_whole_response_leaves_in_one_send(batching_server: tuple[str, list[bytes]]) -> None:
    url, sent = batching_server
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200 and (await resp.json())["ok"] is True
    (only,) = [s for s in sent if s.startswith(b"HTTP/1.1")]
    assert only.startswith(b"HTTP/1.1 200") and only.endswith(b"x" * 100 + b'"}')  # headers and body together


async def test_a_stream_sends_its_headers_with_its_first_frame(batching_server: tuple[str, list[bytes]]) -> None:
    url, sent = batching_server
    async with aiohttp.ClientSession() as http, http.get(f"{url}/stream") as resp:
        body = await resp.read()
    assert body == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    first = sent[0]
    assert first.startswith(b"HTTP/1.1 200") and b"data: 0" in first and b"data: 1" not in first
    assert len(sent) == 3  # headers + frame 0; frame 1; frame 2 with the end of the body


async def test_an_event_stream_sends_its_first_frame_alone_when_the_rest_is_ready_too(
    batching_server: tuple[str, list[bytes]],
) -> None:
    url, sent = batching_server
    async with aiohttp.ClientSession() as http, http.get(f"{url}/burst") as resp:
        body = await resp.read()
    assert body == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    first, *rest = sent
    assert first.startswith(b"HTTP/1.1 200") and first.endswith(b"data: 0\n\n\r\n")  # headers, first frame
    assert len(rest) == 1 and b"data: 1" in rest[0] and b"data: 2" in rest[0]  # the rest together


@contextlib.asynccontextmanager
async def _connection(served: Served) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection(served.host, served.port)
    try:
        yield reader, writer
    finally:
        writer.close()


async def _ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str = "/") -> None:
    """One request on a kept-alive connection, its whole answer read."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    lines = head.lower().split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length"))
    await reader.readexactly(length)


async def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    async with _served(monkeypatch, keep_alive_timeout=0.3) as served:
        async with _connection(served) as (reader, writer):
            await _ask(reader, writer)
            async with asyncio.timeout(10):  # bounded: the server closes it once it has been idle long enough
                assert await reader.read() == b""


async def test_requests_keep_a_connection_alive_past_the_keep_alive_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    async with _served(monkeypatch, keep_alive_timeout=1.0) as served:
        async with _connection(served) as (reader, writer):
            for _ in range(15):  # about 1.5 s of requests: longer than the timeout, never idle for as long
                await _ask(reader, writer)
                await asyncio.sleep(0.1)


async def test_a_request_longer_than_the_keep_alive_timeout_is_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    async with _served(monkeypatch, keep_alive_timeout=0.2) as served:
        async with _connection(served) as (reader, writer):
            await _ask(reader, writer)
            await _ask(reader, writer, "/slow?seconds=0.6")  # the connection is busy, not idle, meanwhile


async def test_a_shutdown_closes_idle_connections_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Neither the keep-alive timeout nor the graceful timeout (after which hypercorn cancels what is left) is
    # near: only the shutdown's own close of idle connections ends this one within the bound below.
    async with _served(monkeypatch, keep_alive_timeout=600, graceful_timeout=60) as served:
        async with _connection(served) as (reader, writer):
            await _ask(reader, writer)
            served.stop.set()
            async with asyncio.timeout(10):  # far less than the keep-alive timeout
                assert await reader.read() == b""
                await served.task
