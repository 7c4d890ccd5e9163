"""The traffic middleware at the ASGI level: requests in flight, the drain, and the body deadline."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import Message, Receive, Scope, Send

from grok2api.traffic import Traffic, TrafficGuard


async def reading_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body, then answers 200 with its length (a client that left gets nothing, as in Starlette)."""
    request = Request(scope, receive)
    try:
        body = await request.body()
    except Exception:  # ClientDisconnect
        await PlainTextResponse("gone", status_code=499)(scope, receive, send)
        return
    await PlainTextResponse(str(len(body)))(scope, receive, send)


def _scope(path: str) -> Scope:
    return {"type": "http", "method": "POST", "path": path, "headers": [], "query_string": b""}


async def _run(guard: TrafficGuard, path: str, chunks: list[bytes | None]) -> list[Message]:
    """Drive one request: each chunk arrives in turn; None means the client then sends nothing more."""
    sent: list[Message] = []
    queue = list(chunks)

    async def receive() -> Message:
        if not queue:
            await asyncio.Event().wait()  # the client never sends the rest
        chunk = queue.pop(0)
        if chunk is None:
            await asyncio.Event().wait()
        return {"type": "http.request", "body": chunk, "more_body": bool(queue)}

    async def send(message: Message) -> None:
        sent.append(message)

    await asyncio.wait_for(guard(_scope(path), receive, send), 5)
    return sent


def _status(sent: list[Message]) -> tuple[int, dict[str, str], bytes]:
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], headers, body


async def test_a_body_that_keeps_arriving_is_read_whole() -> None:
    guard = TrafficGuard(reading_app, Traffic(), body_timeout=0.2)
    status, _, body = _status(await _run(guard, "/v1/chat/completions", [b"ab", b"cd", b"ef"]))
    assert (status, body) == (200, b"6")


@pytest.mark.parametrize(
    ("path", "shape"),
    [("/v1/chat/completions", "openai"), ("/api/tokens/add", "admin-api"), ("/manage/accounts/add", "page")],
)
async def test_a_stalled_body_is_answered_408_in_the_apis_shape(path: str, shape: str) -> None:
    traffic = Traffic()
    guard = TrafficGuard(reading_app, traffic, body_timeout=0.1)
    sent = await _run(guard, path, [b"{", None])
    status, headers, body = _status(sent)
    assert status == 408 and headers["connection"] == "close"
    assert len([m for m in sent if m["type"] == "http.response.start"]) == 1  # the app's own answer was dropped
    if shape == "openai":
        assert msgspec.json.decode(body)["error"]["code"] == "request_timeout"
    elif shape == "admin-api":
        decoded: dict[str, Any] = msgspec.json.decode(body)
        assert (decoded["success"], decoded["code"]) == (False, "REQUEST_TIMEOUT")
    else:
        assert headers["content-type"].startswith("text/html") and b"stopped arriving" in body
    assert traffic.in_flight == 0


async def test_the_drain_waits_for_requests_in_flight() -> None:
    traffic = Traffic()
    release = asyncio.Event()

    async def slow_app(scope: Scope, receive: Receive, send: Send) -> None:
        await release.wait()
        await PlainTextResponse("done")(scope, receive, send)

    guard = TrafficGuard(slow_app, traffic, body_timeout=1)
    running = asyncio.ensure_future(_run(guard, "/v1/models", [b""]))
    await asyncio.sleep(0.05)
    assert traffic.in_flight == 1
    traffic.begin_drain()
    assert not await traffic.wait_idle(0.05)  # still one in flight
    refused = _status(await _run(guard, "/v1/models", [b""]))
    assert refused[0] == 503 and refused[1]["retry-after"] == "1"
    probe = _status(await _run(TrafficGuard(reading_app, traffic, 1), "/healthz", [b""]))
    assert probe[0] == 200  # probes are always answered
    release.set()
    assert await traffic.wait_idle(1)
    assert _status(await running)[0] == 200
