"""``write_batching``: what a connection is given during one loop turn leaves in one send, bounded, in order,
and always before the connection is ended."""

from __future__ import annotations

import asyncio
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

from grok2api import write_batching
from grok2api.write_batching import LIMIT, BatchingWriter


class RecordingWriter:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.events: list[str] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    async def drain(self) -> None:
        self.events.append("drain")

    def write_eof(self) -> None:
        self.events.append(f"eof after {len(self.writes)} writes")

    def close(self) -> None:
        self.events.append(f"close after {len(self.writes)} writes")
        self.closing = True

    async def wait_closed(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


def _batching() -> tuple[BatchingWriter, RecordingWriter]:
    inner = RecordingWriter()
    return BatchingWriter(inner), inner  # type: ignore[arg-type]


async def test_writes_of_one_loop_turn_leave_together_at_the_next() -> None:
    writer, inner = _batching()
    writer.write(b"HTTP/1.1 200 OK\r\n\r\n")
    writer.write(b"")
    writer.write(b"body")
    assert inner.writes == []  # held until the loop turns
    await asyncio.sleep(0)
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    writer.write(b"next")
    await asyncio.sleep(0)
    assert inner.writes[1:] == [b"next"]


async def test_a_large_batch_goes_at_once_and_order_is_kept() -> None:
    writer, inner = _batching()
    writer.write(b"a")
    writer.write(b"b" * LIMIT)
    assert inner.writes == [b"a" + b"b" * LIMIT]  # past the bound: not held
    writer.write(b"c")
    await asyncio.sleep(0)
    assert inner.writes[1:] == [b"c"]


async def test_eof_and_close_send_what_is_held_first() -> None:
    writer, inner = _batching()
    writer.write(b"0\r\n\r\n")
    writer.write_eof()
    writer.write(b"late")
    writer.close()
    assert inner.writes == [b"0\r\n\r\n", b"late"]
    assert inner.events == ["eof after 1 writes", "close after 2 writes"]
    writer.write(b"after close")
    await asyncio.sleep(0)
    assert inner.writes == [b"0\r\n\r\n", b"late"]  # a closed connection takes nothing more
    assert writer.get_extra_info("peername") == ("127.0.0.1", 1) and writer.is_closing()


async def _home(request: Request) -> Response:
    return JSONResponse({"ok": True, "pad": "x" * 100})


async def _stream(request: Request) -> Response:
    async def frames() -> AsyncIterator[bytes]:
        for i in range(3):
            if i:
                await asyncio.sleep(0.02)  # each frame in its own loop turn
            yield f"data: {i}\n\n".encode()

    return StreamingResponse(frames(), media_type="text/event-stream")


@pytest.fixture
async def batching_server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[str, list[bytes]]]:
    monkeypatch.setitem(vars(run), "TCPServer", vars(run)["TCPServer"])  # the install below is undone after the test
    write_batching.install()
    write_batching.install()  # once is enough; twice changes nothing
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
    app = Starlette(routes=[Route("/", _home), Route("/stream", _stream)])
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
        yield url, sent
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


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
