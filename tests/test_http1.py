"""The built-in HTTP/1.1 server (``GROK2API_HTTP_SERVER=builtin``): framing, keep-alive, pipelining, bodies, bad
heads, and a whole chat through it as ``grok2api serve`` runs it."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_serve import CHAT, worker

from grok2api import http1
from grok2api.serving import http_server
from grok2api.sse import ClientLeft, until_disconnect
from grok2api.testing.fake_grok import FakeGrok
from grok2api.traffic import WATCH_DISCONNECT, BodyDeadline


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the method, path and the whole body; ``/stream`` answers in three chunks, no length."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/fail":
        raise RuntimeError("boom")
    if scope["path"] == "/answered-then-fail":  # as Starlette does after its own 500 page
        await send({"type": "http.response.start", "status": 500, "headers": [(b"content-length", b"4")]})
        await send({"type": "http.response.body", "body": b"oops"})
        raise RuntimeError("logged by the app")
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for piece in (b"one ", b"two ", b"three"):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    answer = f"{scope['method']} {scope['path']} {scope['query_string'].decode()} ".encode() + body
    headers = [(b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


@asynccontextmanager
async def served(app: Any = echo, header_timeout: float = 5.0) -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    stop = asyncio.Event()
    task = asyncio.create_task(
        http1.serve(app, [sock], stop.wait, header_timeout=header_timeout, limit=http1.ConnectionLimit(100))
    )
    await asyncio.sleep(0.05)
    try:
        yield port
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def exchange(port: int, data: bytes, until: bytes | None = None) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    got = b""
    with suppress(ConnectionError, TimeoutError):
        async with asyncio.timeout(5):
            while chunk := await reader.read(65536):
                got += chunk
                if until is not None and got.count(until) >= 1 and got.endswith(until):
                    break
    writer.close()
    return got


async def test_keep_alive_and_pipelined_requests_are_answered_in_order() -> None:
    async with served() as port:
        two = b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nhey"
        got = await exchange(port, two + b"GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    answers = got.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert len(answers) == 3
    assert answers[0].endswith(b"GET /a x=1 ") and answers[1].endswith(b"POST /b  hey")
    assert b"connection: close" in answers[2] and answers[2].endswith(b"GET /c  ")


async def test_a_chunked_request_body_and_a_streamed_response() -> None:
    async with served() as port, aiohttp.ClientSession() as http:

        async def pieces() -> AsyncIterator[bytes]:
            for piece in (b"abc", b"def"):
                yield piece

        async with http.post(f"http://127.0.0.1:{port}/up", data=pieces()) as resp:
            assert await resp.read() == b"POST /up  abcdef"
        async with http.get(f"http://127.0.0.1:{port}/stream") as resp:
            assert resp.headers["Transfer-Encoding"] == "chunked"
            assert await resp.read() == b"one two three"
        async with http.head(f"http://127.0.0.1:{port}/h") as resp:
            assert resp.status == 200 and resp.headers["Content-Length"] == str(len(b"HEAD /h  "))
            assert await resp.read() == b""


async def test_expect_continue_is_answered_before_the_body_is_read() -> None:
    async with served() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"ok")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 ")
        writer.close()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * (20 * 1024) + b"\r\n\r\n", b"431"),
        (b"GET /fail HTTP/1.1\r\nHost: h\r\n\r\n", b"500"),
    ],
)
async def test_unreadable_heads_and_failing_apps_get_a_status_and_a_closed_connection(
    request_bytes: bytes, status: bytes
) -> None:
    async with served() as port:
        got = await exchange(port, request_bytes)
    assert got.startswith(b"HTTP/1.1 " + status + b" ") and b"connection: close" in got


async def test_a_head_that_never_finishes_is_dropped_after_the_header_timeout() -> None:
    async with served(header_timeout=0.3) as port:
        got = await exchange(port, b"GET / HTTP/1.1\r\nHost: h\r\n")
    assert got == b""


async def test_an_app_failure_is_logged_once_by_whoever_answered_it(caplog: pytest.LogCaptureFixture) -> None:
    async with served() as port:
        answered = await exchange(port, b"GET /answered-then-fail HTTP/1.1\r\nHost: h\r\n\r\n")
        failed = await exchange(port, b"GET /fail HTTP/1.1\r\nHost: h\r\n\r\n")
    assert answered.startswith(b"HTTP/1.1 500 ") and answered.endswith(b"\r\n\r\noops")
    assert failed.startswith(b"HTTP/1.1 500 ")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == ["the app failed while answering GET /fail"]


async def test_a_disconnect_reaches_a_waiting_app_without_a_task_to_watch_for_it() -> None:
    seen: dict[str, Any] = {}
    left = asyncio.Event()

    async def waiting_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await echo(scope, receive, send)
            return
        body = BodyDeadline(receive, 5.0, scope["extensions"][WATCH_DISCONNECT])
        await body()  # the whole (empty) body

        async def work() -> None:
            seen["tasks"] = len(asyncio.all_tasks())
            await asyncio.Event().wait()

        seen["before"] = len(asyncio.all_tasks())
        try:
            await until_disconnect(body, work())
        except ClientLeft:
            seen["client_left"] = body.client_left
            left.set()

    async with served(waiting_app) as port:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /wait HTTP/1.1\r\nHost: h\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(5):
            while "tasks" not in seen:
                await asyncio.sleep(0.01)
        writer.close()
        async with asyncio.timeout(5):
            await left.wait()
    assert seen == {"before": seen["tasks"], "tasks": seen["tasks"], "client_left": True}


def test_the_builtin_server_serves_plain_http_where_httptools_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert http_server("auto") == "builtin" and http_server("builtin") == "builtin"
    assert http_server("hypercorn") == "hypercorn"
    assert http_server("auto", tls=True) == http_server("builtin", tls=True) == "hypercorn"
    with pytest.raises(ValueError, match="GROK2API_HTTP_SERVER"):
        http_server("nginx")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "httptools" else real_find_spec(name))
    assert http_server("auto") == "hypercorn"
    with pytest.raises(ValueError, match="httptools is not installed"):
        http_server("builtin")


async def test_a_chat_streams_through_the_builtin_server_as_serve_runs_it(tmp_path: Path, fake: FakeGrok) -> None:
    streamed = {**CHAT, "stream": True}
    async with worker(tmp_path, fake, GROK2API_HTTP_SERVER="builtin") as w, aiohttp.ClientSession() as http:
        async with http.post(w.url + "/v1/chat/completions", json=CHAT) as resp:
            answer = await resp.json()
            assert resp.status == 200 and answer["choices"][0]["message"]["content"]
        async with http.post(w.url + "/v1/chat/completions", json=streamed) as resp:
            raw = await resp.read()
            assert resp.status == 200 and raw.rstrip().endswith(b"data: [DONE]")
        async with http.post(w.url + "/v1/chat/completions", data=b"{nope") as resp:
            assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_json"
