"""Images from the Imagine WebSocket, against a small grok.com-like socket on 127.0.0.1: the messages sent, the
frames read into events, and how the socket ends."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from grok2api.grok.errors import UpstreamConnectionError, UpstreamHTTPError
from grok2api.grok.events import End, ErrorEvent, Event, ImageProgress
from grok2api.grok.failures import FailureKind, classify, classify_event
from grok2api.grok.headers import USER_AGENT
from grok2api.grok.imagine import (
    ImagineParser,
    ImagineRequest,
    decode_blob,
    generations_for,
    imagine_url,
    request_message,
    reset_message,
    stream_imagine,
)
from grok2api.grok.transport import AiohttpTransport
from grok2api.grok.unknown_shapes import UnknownShapes
from grok2api.settings import RuntimeSettings

from harness import serve_app

Json = dict[str, Any]
PICTURE = b"\xff\xd8\xff\xe0picture"
B64 = base64.b64encode(PICTURE).decode()


def image(image_id: str, percent: int, **extra: Any) -> Json:
    return {"type": "image", "image_id": image_id, "url": f"u/{image_id}.jpg", "percentage_complete": percent, **extra}


def verdict(image_id: str, moderated: bool = False, **extra: Any) -> Json:
    return {"type": "json", "image_id": image_id, "current_status": "completed", "moderated": moderated, **extra}


def feed(parser: ImagineParser, *frames: Json) -> list[Event]:
    return [event for frame in frames for event in parser.feed(json.dumps(frame))]


def test_urls_counts_and_messages() -> None:
    assert imagine_url("https://grok.com/") == "wss://grok.com/ws/imagine/listen"
    assert imagine_url("http://127.0.0.1:9") == "ws://127.0.0.1:9/ws/imagine/listen"
    assert [generations_for(n) for n in (1, 4, 5, 8, 9, 10, 12)] == [4, 4, 8, 8, 12, 12, 12]
    reset = reset_message()
    assert reset["type"] == "conversation.item.create" and isinstance(reset["timestamp"], int)
    assert reset["item"] == {"type": "message", "content": [{"type": "reset"}]}
    message = request_message(ImagineRequest("a fox", "16:9", pro=True, generations=8))
    (content,) = message["item"]["content"]
    assert content["type"] == "input_text" and content["text"] == "a fox"
    assert content["requestId"].startswith("img_") and len(content["requestId"]) == 36
    assert content["properties"] == {
        "section_count": 0,
        "is_kids_mode": False,
        "enable_nsfw": False,
        "skip_upsampler": False,
        "enable_side_by_side": True,
        "is_initial": False,
        "aspect_ratio": "16:9",
        "enable_pro": True,
        "num_generations": 8,
    }


def test_blobs_are_base64_or_data_urls() -> None:
    assert decode_blob(B64) == PICTURE
    assert decode_blob(B64.rstrip("=")) == PICTURE  # unpadded
    assert decode_blob(f"data:image/jpeg;base64,{B64}") == PICTURE
    for unreadable in (None, "", 5, "not base64!", "data:image/jpeg,rawbytes", "data:;base64"):
        assert decode_blob(unreadable) is None


def test_previews_then_each_final_once_its_verdict_came() -> None:
    parser = ImagineParser(2)
    events = feed(
        parser,
        image("a", 30, blob=B64),
        image("b", 30),
        image("a", 30, blob=B64),  # no progress: dropped
        image("a", 60, url="u/a-part-0.jpg"),
        image("a", 100, blob=f"data:image/jpeg;base64,{B64}"),
    )
    assert events == [
        ImageProgress(0, 30, url="u/a.jpg", data=PICTURE),
        ImageProgress(1, 30, url="u/b.jpg"),
        ImageProgress(0, 60, url="u/a-part-0.jpg"),
    ]  # the final picture waits: it may yet be moderated
    events = feed(parser, verdict("b", moderated=True), image("b", 100), verdict("a"), verdict("a"))
    assert events == [
        ImageProgress(1, 100, True, final=True),  # no picture for a moderated image
        ImageProgress(0, 100, url="u/a.jpg", data=PICTURE, final=True),
        End(""),
    ]
    assert parser.done and feed(parser, image("c", 30)) == []


def test_a_verdict_alone_carries_the_image() -> None:
    parser = ImagineParser(1)
    events = feed(parser, {"type": "json", "job_id": "j", "current_status": "pending"}, verdict("j", url="u/j.jpg"))
    assert events == [ImageProgress(0, 100, url="u/j.jpg", final=True), End("")]


def test_a_verdict_before_its_picture_waits_for_it() -> None:
    parser = ImagineParser(2)
    assert feed(parser, {"type": "json", "image_id": "a", "current_status": "completed"}) == []
    assert feed(parser, image("a", 100, blob=B64)) == [ImageProgress(0, 100, url="u/a.jpg", data=PICTURE, final=True)]
    assert feed(parser, verdict("b", url="u/b.jpg"))[-1] == End("")


def test_errors_unknown_frames_and_packed_frames() -> None:
    shapes = UnknownShapes()
    parser = ImagineParser(4, unknown=shapes)
    packed = json.dumps(image("a", 30)) + json.dumps({"type": "status", "note": "queued"})
    assert parser.feed(packed) == [ImageProgress(0, 30, url="u/a.jpg")]
    assert parser.feed("[1, 2]") == [] and parser.feed(json.dumps({"type": "image"})) == []
    assert shapes.counts == {"imagine:status": 1, "imagine:not-an-object": 1}
    (usage,) = parser.feed(json.dumps({"type": "error", "code": "resource_exhausted", "message": "usage limit hit"}))
    assert isinstance(usage, ErrorEvent) and usage.rate_limited and parser.done
    assert classify_event(usage).kind == FailureKind.RATE_LIMITED
    bot = ImagineParser(1).feed(json.dumps({"type": "error", "error": {"code": "anti_bot", "message": "rejected"}}))
    assert isinstance(bot[0], ErrorEvent) and classify_event(bot[0]).kind == FailureKind.EGRESS
    (bare,) = ImagineParser(1).feed(json.dumps({"type": "error"}))
    assert isinstance(bare, ErrorEvent) and bare.message == "grok.com's Imagine reported an error"


class ImagineServer:
    """``/ws/imagine/listen``: records the handshake and messages, then plays ``frames`` once the request came."""

    def __init__(self) -> None:
        self.frames: list[Json] = []
        self.refusal: tuple[int, str] | None = None
        self.close_after = False  # close once the frames are out (else wait for the client)
        self.request: web.Request | None = None
        self.received: list[Json] = []
        self.client_closed = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.refusal is not None:
            status, body = self.refusal
            return web.Response(status=status, text=body, content_type="application/json")
        self.request = request
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.received.clear()
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.received.append(json.loads(msg.data))
                if len(self.received) == 2:  # the reset, then the request
                    for frame in self.frames:
                        await ws.send_str(json.dumps(frame))
                    if self.close_after:
                        await ws.close()
        self.client_closed.set()
        return ws


@pytest.fixture
async def grok() -> AsyncIterator[ImagineServer]:
    server = ImagineServer()
    app = web.Application()
    app.router.add_get("/ws/imagine/listen", server.handle)
    async with serve_app(app) as server.url:
        yield server


async def generate(grok: ImagineServer, transport: AiohttpTransport, user_id: str = "", n: int = 4) -> list[Event]:
    settings = RuntimeSettings(upstream_url=grok.url, cf_clearance="cfv")
    request = ImagineRequest("a lighthouse", "1:1", generations=n)
    return [event async for batch in stream_imagine(transport, "tok-1", user_id, request, settings) for event in batch]


async def test_a_generation_over_the_socket(grok: ImagineServer, transport: AiohttpTransport) -> None:
    grok.frames = [image("a", 50, blob=B64), image("a", 100, blob=B64), verdict("a")]
    events = await generate(grok, transport, n=1)
    assert events == [
        ImageProgress(0, 50, url="u/a.jpg", data=PICTURE),
        ImageProgress(0, 100, url="u/a.jpg", data=PICTURE, final=True),
        End(""),
    ]
    assert grok.request is not None
    headers = grok.request.headers
    assert headers["Cookie"] == "sso=tok-1; sso-rw=tok-1; cf_clearance=cfv"  # no x-userid while it is unknown
    assert headers["Origin"] == grok.url and headers["User-Agent"] == USER_AGENT and "x-statsig-id" not in headers
    reset, ask = grok.received
    assert reset["item"]["content"] == [{"type": "reset"}]
    assert ask["item"]["content"][0]["text"] == "a lighthouse"
    assert ask["item"]["content"][0]["properties"]["num_generations"] == 1
    await asyncio.wait_for(grok.client_closed.wait(), 2)  # closed once every image was finished


async def test_the_user_id_goes_into_the_cookie_when_known(grok: ImagineServer, transport: AiohttpTransport) -> None:
    grok.frames = [verdict("a", url="u/a.jpg")]
    await generate(grok, transport, user_id="uid-1", n=1)
    assert grok.request is not None and grok.request.headers["Cookie"].endswith("; x-userid=uid-1")


async def test_a_socket_closed_early(grok: ImagineServer, transport: AiohttpTransport) -> None:
    grok.close_after = True
    grok.frames = [image("a", 50)]
    with pytest.raises(UpstreamConnectionError, match="before any image was finished"):
        await generate(grok, transport)
    grok.frames = [verdict("a", url="u/a.jpg")]  # one of four finished: that one is the answer
    assert await generate(grok, transport) == [ImageProgress(0, 100, url="u/a.jpg", final=True), End("")]


async def test_a_refused_handshake_classifies_like_http(grok: ImagineServer, transport: AiohttpTransport) -> None:
    grok.refusal = (403, '{"error":{"code":7,"message":"User is blocked [WKE=unauthorized:blocked-user]"}}')
    with pytest.raises(UpstreamHTTPError) as info:
        await generate(grok, transport)
    assert info.value.status == 403 and classify(info.value).kind == FailureKind.BLOCKED


async def test_the_socket_closes_when_the_consumer_stops(grok: ImagineServer, transport: AiohttpTransport) -> None:
    grok.frames = [image("a", 50)]
    settings = RuntimeSettings(upstream_url=grok.url)
    stream = stream_imagine(transport, "tok-1", "", ImagineRequest("x"), settings)
    assert await anext(stream) == [ImageProgress(0, 50, url="u/a.jpg")]
    await stream.aclose()
    await asyncio.wait_for(grok.client_closed.wait(), 2)
