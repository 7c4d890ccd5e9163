"""``sse``: streams written in the request's own task, the client-disconnect watch, and back-pressure from a
client that reads nothing while others stream through the gateway."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import aiohttp
import msgspec
import pytest

from grok2api.sse import ClientLeft, EventStream, until_disconnect
from grok2api.testing.fake_grok import FakeGrok
from grok2api.write_batching import BatchingWriter, serving_writer

from harness import LiveGateway


class FakeAsgi:
    """An ASGI server's side of one request: what the app sent, and a disconnect on demand."""

    def __init__(self) -> None:
        self.sent: list[MutableMapping[str, Any]] = []
        self._leave = asyncio.Event()

    async def receive(self) -> MutableMapping[str, Any]:
        await self._leave.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        self.sent.append(message)

    def leave(self) -> None:
        self._leave.set()

    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


SCOPE: dict[str, Any] = {"type": "http", "asgi": {"spec_version": "2.1"}}


async def test_an_event_stream_writes_each_frame_then_ends_then_runs_its_after_hook() -> None:
    asgi = FakeAsgi()
    order: list[str] = []

    async def frames() -> AsyncIterator[bytes]:
        for i in range(3):
            yield f"data: {i}\n\n".encode()

    async def after() -> None:
        order.append(f"after, {len(asgi.sent)} messages sent")

    await EventStream(frames(), headers={"X-Accel-Buffering": "no"}, background=after)(SCOPE, asgi.receive, asgi.send)
    start, *bodies = asgi.sent
    assert start["type"] == "http.response.start" and start["status"] == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in start["headers"]
    assert (b"x-accel-buffering", b"no") in start["headers"]
    assert [m["body"] for m in bodies] == [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n", b""]
    assert [m["more_body"] for m in bodies] == [True, True, True, False]
    assert order == ["after, 5 messages sent"]  # after the last byte, never before it


async def test_the_first_frame_leaves_before_the_rest_of_a_burst_is_read() -> None:
    # The server hands what it is given to the connection's batching writer, which sends at the next loop turn;
    # frames that are ready at once would all wait for that turn, the first one too.
    asgi = FakeAsgi()
    order: list[str] = []

    class Socket:
        def write(self, data: bytes) -> None:
            order.append(f"sent {data.decode()}")

        def is_closing(self) -> bool:
            return False

    writer = BatchingWriter(Socket())  # type: ignore[arg-type]

    async def send(message: MutableMapping[str, Any]) -> None:
        writer.write(message.get("body", b""))

    async def frames() -> AsyncIterator[bytes]:
        for i in range(3):
            order.append(f"produced {i}")
            yield str(i).encode()  # nothing awaited between frames: a burst that is already in

    with serving_writer(writer):
        await EventStream(frames())(SCOPE, asgi.receive, send)
    await asyncio.sleep(0)
    assert order == ["produced 0", "sent 0", "produced 1", "produced 2", "sent 12"]


async def test_a_client_that_leaves_closes_the_frames_and_the_after_hook_still_runs() -> None:
    asgi = FakeAsgi()
    events: list[str] = []

    async def frames() -> AsyncIterator[bytes]:
        try:
            yield b"data: first\n\n"
            await asyncio.Event().wait()  # an upstream that never sends again
            yield b"data: never\n\n"
        finally:
            events.append("frames closed")

    async def after() -> None:
        events.append("after")

    stream = asyncio.ensure_future(EventStream(frames(), background=after)(SCOPE, asgi.receive, asgi.send))
    while asgi.body() != b"data: first\n\n":
        await asyncio.sleep(0)
    asgi.leave()
    async with asyncio.timeout(5):
        await stream  # ends quietly: the client left, nobody to answer
    assert events == ["frames closed", "after"]
    assert not stream.cancelled()


async def test_until_disconnect_returns_the_work_result_and_leaves_no_watcher() -> None:
    asgi = FakeAsgi()
    before = len(asyncio.all_tasks())

    async def work() -> str:
        await asyncio.sleep(0)
        return "done"

    assert await until_disconnect(asgi.receive, work()) == "done"
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == before


async def test_until_disconnect_cancels_the_work_when_the_client_leaves() -> None:
    asgi = FakeAsgi()
    cleaned: list[str] = []

    async def work() -> str:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append("upstream closed")
        return "never"

    asyncio.get_running_loop().call_later(0.05, asgi.leave)
    with pytest.raises(ClientLeft):
        async with asyncio.timeout(5):
            await until_disconnect(asgi.receive, work())
    assert cleaned == ["upstream closed"]
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # the cancellation it made was taken back


async def test_until_disconnect_lets_an_outside_cancellation_through() -> None:
    asgi = FakeAsgi()

    async def work() -> None:
        await asyncio.Event().wait()

    runner = asyncio.ensure_future(until_disconnect(asgi.receive, work()))
    await asyncio.sleep(0.01)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner


# -- back-pressure through the gateway ---------------------------------------------------------------

PACED = "[[tokens:10]] [[fault:slow-tokens:0.05]] paced"
FLOOD = "[[tokens:200000]] flood"  # tens of megabytes: far more than every socket buffer on the way holds
STREAMS = 100


def _chat(prompt: str) -> bytes:
    return msgspec.json.encode(
        {"model": "grok-fast", "stream": True, "messages": [{"role": "user", "content": prompt}]}
    )


async def _stalled_request(url: str) -> socket.socket:
    """A client that sends its request and then reads nothing (a tiny receive buffer, so the server's writes
    for it back up at once)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (host, int(port)))
    body = _chat(FLOOD)
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    await loop.sock_sendall(sock, head + body)
    return sock


async def _paced_stream(http: aiohttp.ClientSession, url: str) -> int:
    tokens = 0
    async with http.post(f"{url}/v1/chat/completions", data=_chat(PACED)) as resp:
        assert resp.status == 200
        async for line in resp.content:
            if line.startswith(b"data: {") and b'"content":"tok' in line:
                tokens += 1
            if line.startswith(b"data: [DONE]"):
                return tokens
    raise AssertionError("the stream ended without [DONE]")


def _flood_session(fake: FakeGrok) -> Any:
    found = [s for s in fake.mgw_sessions() if any("flood" in str(c) for c in s.input_chunks)]
    return found[0] if found else None


async def test_a_client_that_reads_nothing_never_holds_up_the_other_streams(
    gateway: LiveGateway, fake: FakeGrok
) -> None:
    await gateway.add_accounts(*(f"heavy-bp-{i}" for i in range(4)), tier="heavy")
    stalled = await _stalled_request(gateway.url)
    try:
        async with asyncio.timeout(60):  # generous: the other streams need about a second
            while _flood_session(fake) is None:
                await asyncio.sleep(0.05)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http, asyncio.timeout(120):
            counts = await asyncio.gather(*(_paced_stream(http, gateway.url) for _ in range(STREAMS)))
        assert counts == [10] * STREAMS  # every other stream came through whole
        flood = _flood_session(fake)
        assert flood is not None and not flood.closed  # the stalled answer is held back, not finished or dropped
        # The pause reaches grok.com: it can send no more of that answer while its client reads nothing.
        held = len(flood.sent)
        await asyncio.sleep(0.5)
        assert len(flood.sent) == held < 200000
    finally:
        stalled.close()
    async with asyncio.timeout(60):  # once its client is gone, the stalled answer is let go of upstream too
        while not flood.closed:
            await asyncio.sleep(0.05)
