"""Both transports' WebSockets (aiohttp, and curl_cffi impersonating Chrome) against a small aiohttp
server on 127.0.0.1: frames both ways, closes, and refused handshakes turned into classifiable HTTP
answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict

from grok2api.grok import transport as transport_module
from grok2api.grok.browser import CurlTransport
from grok2api.grok.errors import UpstreamConnectionError, UpstreamHTTPError
from grok2api.grok.failures import FailureKind, classify
from grok2api.grok.transport import AiohttpTransport, Transport

from harness import UPSTREAM_TRANSPORTS, serve_app

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    """One route, ``/ws``, whose handler a test sets; every request's headers are kept."""

    def __init__(self) -> None:
        self.handler: Handler = self._echo
        self.requests: list[web.Request] = []
        self.url = ""

    async def _route(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        return await self.handler(request)

    @staticmethod
    async def _echo(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                if msg.data == "close":
                    break
                await ws.send_str("echo:" + msg.data)
                await ws.send_bytes(b"bytes:" + msg.data.encode())
        await ws.close()
        return ws


@pytest.fixture(params=[*UPSTREAM_TRANSPORTS, "aiohttp-session"])
async def transport(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    """Each transport, and aiohttp's own WebSocket client too (what a proxied socket goes through): without a
    proxy the aiohttp transport opens WebSockets straight on asyncio."""
    t: Transport
    if request.param == "curl_cffi":
        t = CurlTransport()
    else:
        t = AiohttpTransport(direct_websockets=request.param == "aiohttp")
    try:
        yield t
    finally:
        await t.close()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    app = web.Application()
    app.router.add_get("/ws", srv._route)
    async with serve_app(app) as base:
        srv.url = base.replace("http://", "ws://") + "/ws"
        yield srv


async def test_frames_go_both_ways_and_a_close_reads_as_none(server: Server, transport: Transport) -> None:
    ws = await transport.websocket(server.url, {"Cookie": "sso=a; x-userid=u", "Origin": "http://o.example"}, "")
    await ws.send_json({"event": {"type": "ping", "n": 1}})
    assert await ws.receive_text() == 'echo:{"event":{"type":"ping","n":1}}'
    assert await ws.receive_text() == 'bytes:{"event":{"type":"ping","n":1}}'
    await ws.send_json("close")  # a JSON string: the server sees "close" in quotes and echoes it
    assert await ws.receive_text() == 'echo:"close"'
    assert await ws.receive_text() == 'bytes:"close"'
    await ws.close()
    (request,) = server.requests
    assert request.headers["Cookie"] == "sso=a; x-userid=u" and request.headers["Origin"] == "http://o.example"
    session, proxy = transport.session("")  # other hosts stay on aiohttp, whatever reaches grok.com
    assert isinstance(session, aiohttp.ClientSession) and proxy is None


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "session"])
async def test_frames_already_parsed_show_as_buffered_on_aiohttp(server: Server, direct: bool) -> None:
    transport = AiohttpTransport(direct_websockets=direct)
    ws = await transport.websocket(server.url, {}, "")
    try:
        assert not ws.buffered()
        await ws.send_json("two frames")  # the echo answers with two
        assert await ws.receive_text() == 'echo:"two frames"'
        for _ in range(100):  # until the second has been read off the socket
            if ws.buffered():
                break
            await asyncio.sleep(0.01)
        assert ws.buffered()
        assert await ws.receive_text() == 'bytes:"two frames"'
        assert not ws.buffered()
    finally:
        await ws.close()
        await transport.close()


async def test_the_handshake_answer_headers_are_kept(server: Server, transport: Transport) -> None:
    async def with_cookies(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        ws.headers["X-Seen"] = "yes"
        ws.set_cookie("__cf_bm", "bm1", path="/")
        ws.set_cookie("_cfuvid", "uv1", path="/")
        await ws.prepare(request)
        await ws.close()
        return ws

    server.handler = with_cookies
    ws = await transport.websocket(server.url, {}, "")
    try:
        assert ws.handshake_headers["X-Seen"] == "yes"
        assert sorted(c.split(";")[0] for c in ws.handshake_headers.getall("Set-Cookie")) == [
            "__cf_bm=bm1",
            "_cfuvid=uv1",
        ]
    finally:
        await ws.close()


async def test_the_server_closing_reads_as_none_and_sending_after_fails(server: Server, transport: Transport) -> None:
    async def close_at_once(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.close()
        return ws

    server.handler = close_at_once
    ws = await transport.websocket(server.url, {}, "")
    assert await ws.receive_text() is None
    with pytest.raises(UpstreamConnectionError):
        for _ in range(3):  # the first send after a close may still be buffered
            await ws.send_json({"late": True})
            await asyncio.sleep(0.01)
    await ws.close()


async def test_an_oversized_frame_is_a_connection_error(
    server: Server, transport: Transport, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def big(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("x" * 2048)
        await ws.receive()
        return ws

    monkeypatch.setattr(transport_module, "MAX_FRAME", 1024)
    server.handler = big
    ws = await transport.websocket(server.url, {}, "")
    with pytest.raises(UpstreamConnectionError, match="WebSocket frame over"):
        await ws.receive_text()
    await ws.close()


def refuse(status: int, body: str, content_type: str, headers: dict[str, str] | None = None) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text=body, content_type=content_type, headers=headers)

    return handler


@pytest.mark.parametrize(
    ("handler", "kind", "marker"),
    [
        (
            refuse(
                403,
                '{"error":{"code":7,"message":"User is blocked [WKE=unauthorized:blocked-user]"}}',
                "application/json",
            ),
            FailureKind.BLOCKED,
            "blocked-user",
        ),
        (
            refuse(403, '{"error":{"code":7,"message":"Request rejected by anti-bot rules."}}', "application/json"),
            FailureKind.EGRESS,
            "anti-bot",
        ),
        (
            refuse(403, "<html><title>Just a moment...</title></html>", "text/html", {"cf-mitigated": "challenge"}),
            FailureKind.EGRESS,
            "Just a moment",
        ),
        (
            refuse(401, '{"error":{"code":16,"message":"Failed to look up session ID."}}', "application/json"),
            FailureKind.INVALID,
            "session ID",
        ),
        (
            refuse(429, '{"error":{"code":8,"message":"Too many requests"}}', "application/json", {"Retry-After": "7"}),
            FailureKind.RATE_LIMITED,
            "Too many",
        ),
    ],
)
async def test_a_refused_handshake_is_classified_like_an_http_answer(
    server: Server, transport: Transport, handler: Handler, kind: FailureKind, marker: str
) -> None:
    server.handler = handler
    with pytest.raises(UpstreamHTTPError) as info:
        await transport.websocket(server.url, {"Cookie": "sso=a"}, "")
    assert marker in info.value.body and len(info.value.body) <= 4096
    failure = classify(info.value)
    assert failure.kind == kind
    if kind == FailureKind.RATE_LIMITED:
        assert failure.retry_after == 7
    upgrade, plain = server.requests  # the refusal body is read with a plain GET, same headers
    assert upgrade.headers.get("Upgrade", "").lower() == "websocket" and "Upgrade" not in plain.headers
    assert plain.headers["Cookie"] == "sso=a" and plain.url.path == "/ws"


async def test_the_refusal_body_is_capped_and_a_different_get_answer_is_not_used(
    server: Server, transport: Transport
) -> None:
    server.handler = refuse(403, "blocked-user " + "x" * 10000, "text/plain")
    with pytest.raises(UpstreamHTTPError) as info:
        await transport.websocket(server.url, {}, "")
    assert len(info.value.body) == 4096

    async def only_the_upgrade_is_refused(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade"):
            return web.Response(status=403, headers={"cf-mitigated": "challenge"})
        return web.Response(status=200, text="the home page")

    server.handler = only_the_upgrade_is_refused
    with pytest.raises(UpstreamHTTPError) as info:
        await transport.websocket(server.url, {}, "")
    assert (info.value.status, info.value.body) == (403, "")
    assert classify(info.value).kind == FailureKind.EGRESS  # from the handshake's own header


async def test_connection_failures_and_slow_handshakes(
    server: Server, transport: Transport, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(UpstreamConnectionError, match="could not connect"):
        await transport.websocket("ws://127.0.0.1:9/ws", {}, "")

    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.Response(status=500)

    monkeypatch.setattr(transport_module, "HANDSHAKE_TIMEOUT", 0.2)
    server.handler = slow
    with pytest.raises(UpstreamConnectionError, match="in time"):
        await transport.websocket(server.url, {}, "")


def test_websocket_urls_map_to_http_for_the_refusal_read() -> None:
    assert transport_module._http_url("wss://grok.com/ws/mgw/?uid=1") == "https://grok.com/ws/mgw/?uid=1"
    assert transport_module._http_url("ws://127.0.0.1:8/ws") == "http://127.0.0.1:8/ws"
    assert transport_module._http_url("https://x") == "https://x"


class _SlowClosingSocket:
    """A socket whose close takes a moment, as a closing handshake does."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()
        self.handshake_headers: CIMultiDict[str] = CIMultiDict()

    async def send_json(self, *objs: object) -> None:
        return None

    async def receive_text(self) -> str | None:
        return None

    async def close(self) -> None:
        await asyncio.sleep(0.05)
        self.closed.set()

    def buffered(self) -> bool:
        return False

    def known_closed(self) -> bool:
        return False


async def test_release_closes_the_socket_even_when_its_caller_keeps_being_cancelled() -> None:
    ws = _SlowClosingSocket()
    helper = asyncio.create_task(asyncio.sleep(60))

    async def owner() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            await transport_module.release(ws, helper)

    task = asyncio.create_task(owner())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0)
    task.cancel()  # a server's cancel scope cancels every await of a cancelled request again
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(ws.closed.wait(), 5)
    assert helper.cancelled()


async def test_a_stream_judged_by_its_first_bytes_still_gives_the_rest_and_ends(transport: Transport) -> None:
    async def refusal(request: web.Request) -> web.StreamResponse:
        return web.Response(status=403, text="0123456789" * 3)

    app = web.Application()
    app.router.add_get("/refused", refusal)
    async with serve_app(app) as base:
        async with transport.stream("GET", f"{base}/refused", {}) as resp:
            head = await resp.read_some(4)
            rest = b"".join([chunk async for chunk in resp.chunks()])
    assert resp.status == 403 and head == b"0123"
    assert head + rest == b"0123456789" * 3  # nothing lost, nothing twice, and the end is seen
