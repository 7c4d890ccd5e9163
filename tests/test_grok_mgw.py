"""One chat turn over the WebSocket, against a small grok.com-like socket on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from grok2api.grok.errors import UpstreamConnectionError, UpstreamHTTPError
from grok2api.grok.events import End, ErrorEvent, Event, Reasoning, Text
from grok2api.grok.failures import FailureKind, classify, classify_event
from grok2api.grok.headers import USER_AGENT
from grok2api.grok.mgw import mgw_url, session_create, stream_mgw, turn_events
from grok2api.grok.transport import Transport
from grok2api.settings import RuntimeSettings

from harness import serve_app

Json = dict[str, Any]


def ev(kind: str, **fields: Any) -> Json:
    return {"session_id": "conv-1", "event": {"type": kind, **fields}}


def pack(*events: Json) -> str:
    return "".join(json.dumps(e) for e in events)


OPENED = pack(
    ev("session.created", client_event_id="evt_init_x"),
    ev("conversation.attached", conversation={"id": "conv-1", "object": "realtime.conversation"}, mode="new"),
)
ANSWER = [
    pack(ev("response.created", response={"id": "r1", "status": "in_progress", "x_grok": {"model": "fast"}})),
    pack(
        ev("response.chunk", chunk={"text": {"text": "Thinking", "channel": "CHANNEL_ASSISTANT_NOTETAKER_HEADER"}}),
        ev("response.chunk", chunk={"text": {"text": "Hi", "channel": "CHANNEL_ASSISTANT_RESPONSE"}}),
    ),
    pack(ev("response.chunk", chunk={"text": {"text": " there", "channel": "CHANNEL_ASSISTANT_RESPONSE"}})),
    pack(
        ev("response.done", response={"id": "r1", "status": "completed"}),
        ev("response.chunk", chunk={"text": {"text": "late", "channel": "CHANNEL_ASSISTANT_RESPONSE"}}),
    ),
]


class MgwServer:
    """``/ws/mgw/``: opens the session, waits for the turn, then plays ``frames`` (``pause`` seconds
    apart). It records the handshake, every message received, and when the client closed."""

    def __init__(self) -> None:
        self.frames: list[str] = ANSWER
        self.opening: list[str] = [OPENED]
        self.pause = 0.0
        self.refusal: tuple[int, str, dict[str, str]] | None = None  # status, body, headers
        self.hold_open = False  # keep the socket open after the frames
        self.request: web.Request | None = None
        self.received: list[Json] = []
        self.client_closed = asyncio.Event()
        self.url = ""

    def of(self, kind: str) -> list[Json]:
        return [m for m in self.received if m["event"]["type"] == kind]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.refusal is not None:
            status, body, headers = self.refusal
            return web.Response(status=status, text=body, headers=headers)
        self.request = request
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        reader = asyncio.create_task(self._read(ws))
        try:
            await self._wait_for("session.create")
            for frame in self.opening:
                await ws.send_str(frame)
            await self._wait_for("response.create")
            for frame in self.frames:
                await asyncio.sleep(self.pause)
                await ws.send_str(frame)
            if self.hold_open:
                await reader
        finally:
            reader.cancel()
            await ws.close()
        return ws

    async def _read(self, ws: web.WebSocketResponse) -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.received.append(json.loads(msg.data))
        self.client_closed.set()

    async def _wait_for(self, kind: str) -> None:
        while not self.of(kind):
            await asyncio.sleep(0.005)


@pytest.fixture
async def grok() -> AsyncIterator[MgwServer]:
    server = MgwServer()
    app = web.Application()
    app.router.add_get("/ws/mgw/", server.handle)
    async with serve_app(app) as server.url:
        yield server


Turn = Callable[..., Awaitable[list[list[Event]]]]


@pytest.fixture
def turn(grok: MgwServer, transport: Transport) -> Turn:
    async def run(**kwargs: Any) -> list[list[Event]]:
        settings = kwargs.pop("settings", RuntimeSettings(upstream_url=grok.url, cf_clearance="cfv"))
        files = kwargs.pop("file_ids", ["file-1", "file-2"])
        batches = []
        stream = stream_mgw(transport, "tok-1", "uid-1", "expert", "hello", files, settings, **kwargs)
        async for batch in stream:
            batches.append(batch)
        return batches

    return run


async def test_a_turn_sends_the_browser_handshake_and_events_in_order(grok: MgwServer, turn: Turn) -> None:
    grok.hold_open = True  # only the client can end this socket
    batches = await turn()
    events = [e for batch in batches for e in batch]  # frames that arrived together may share a batch
    assert events == [Reasoning("Thinking"), Text("Hi"), Text(" there"), End("Hi there", "fast")]
    assert grok.request is not None
    headers = grok.request.headers
    assert headers["Cookie"] == "sso=tok-1; sso-rw=tok-1; cf_clearance=cfv; x-userid=uid-1"
    assert headers["Origin"] == grok.url and headers["User-Agent"] == USER_AGENT
    assert headers["Cache-Control"] == headers["Pragma"] == "no-cache" and headers["Accept-Language"]
    assert "x-statsig-id" not in headers and grok.request.query["uid"] == "uid-1"

    create, item, response = grok.received
    assert create["event"]["type"] == "session.create" and "session_id" not in create
    assert create["event"]["event_id"].startswith("evt_init_")
    session = create["event"]["session"]
    assert session["model"] == "expert"
    flags = session["x_grok"]
    assert flags["use_chunk"] is True and flags["protocol_capabilities"] == [
        "conversation_attached",
        "custom_methods_v1",
    ]
    assert (flags["is_temporary"], flags["disable_memory"], flags["keep_context"]) == (True, True, False)

    assert item["session_id"] == response["session_id"] == "conv-1"
    body = item["event"]
    assert body["type"] == "conversation.item.create" and body["event_id"].startswith("evt_msg_")
    assert body["item"]["x_grok"]["input_chunks"] == [
        {"mention": {"target": {"file_mention": {"file_id": "file-1"}}}},
        {"mention": {"target": {"file_mention": {"file_id": "file-2"}}}},
        {"text": {"text": "hello"}},
    ]
    assert body["item"]["file_attachment_ids"] == body["file_attachment_ids"] == ["file-1", "file-2"]
    assert (body["item"]["type"], body["item"]["role"]) == ("message", "user")
    assert response["event"]["type"] == "response.create" and response["event"]["event_id"].startswith("evt_resp_")
    await asyncio.wait_for(grok.client_closed.wait(), 2)  # the socket is closed once the turn ended


def _tokens(n: int) -> list[str]:
    opening = pack(ev("response.created", response={"id": "r1", "status": "in_progress"}))
    words = [pack(ev("response.chunk", chunk={"text": {"text": f"w{i} "}})) for i in range(n)]
    return [opening, *words, pack(ev("response.done", response={"id": "r1", "status": "completed"}))]


async def test_frames_that_already_arrived_share_one_batch(grok: MgwServer, transport: Transport) -> None:
    grok.frames = _tokens(30)
    stream = stream_mgw(transport, "tok-1", "uid-1", "fast", "hello", [], RuntimeSettings(upstream_url=grok.url))
    first = await anext(stream)
    await asyncio.sleep(0.3)  # a reader that fell behind: the rest of the answer is waiting for it
    rest = [batch async for batch in stream]
    texts = [e.text for batch in [first, *rest] for e in batch if isinstance(e, Text)]
    assert "".join(texts) == "".join(f"w{i} " for i in range(30))
    if transport.__class__.__name__ == "AiohttpTransport":
        assert len(rest) == 1 and isinstance(rest[0][-1], End)  # one batch, so one write to the client
    else:
        assert len(rest) >= 1  # curl_cffi reads frame by frame


async def test_frames_that_arrive_apart_stay_apart(grok: MgwServer, turn: Turn) -> None:
    grok.frames = _tokens(5)
    grok.pause = 0.03
    batches = await turn(file_ids=[])
    assert [[type(e).__name__ for e in b] for b in batches] == [["Text"]] * 5 + [["End"]]


async def test_a_kept_chat_and_a_turn_without_files(grok: MgwServer, turn: Turn) -> None:
    settings = RuntimeSettings(upstream_url=grok.url, temporary=False)
    await turn(settings=settings, file_ids=[])
    create, item, _ = grok.received
    flags = create["event"]["session"]["x_grok"]
    assert flags["is_temporary"] is False and "disable_memory" not in flags and "keep_context" not in flags
    assert item["event"]["item"]["x_grok"]["input_chunks"] == [{"text": {"text": "hello"}}]
    assert "file_attachment_ids" not in item["event"] and "file_attachment_ids" not in item["event"]["item"]
    assert grok.request is not None and grok.request.headers["Cookie"] == "sso=tok-1; sso-rw=tok-1; x-userid=uid-1"


async def test_pings_keep_a_slow_answer_alive(grok: MgwServer, turn: Turn) -> None:
    grok.pause = 0.1
    batches = await turn(ping_seconds=0.04)
    assert batches[-1] == [End("Hi there", "fast")]
    pings = grok.of("ping")
    assert len(pings) >= 3
    assert all(p["event"]["event_id"].startswith("evt_hb_") and "session_id" not in p for p in pings)


async def test_the_socket_closes_when_the_consumer_stops(grok: MgwServer, transport: Transport) -> None:
    grok.hold_open = True
    settings = RuntimeSettings(upstream_url=grok.url)
    stream = stream_mgw(transport, "tok-1", "uid-1", "fast", "hello", [], settings, ping_seconds=0.01)
    assert await anext(stream) == [Reasoning("Thinking"), Text("Hi")]
    await stream.aclose()
    await asyncio.wait_for(grok.client_closed.wait(), 2)
    count = len(grok.of("ping"))
    await asyncio.sleep(0.05)
    assert len(grok.of("ping")) == count  # the heartbeat stopped with the turn


async def test_an_in_band_error_before_the_session_opens_ends_the_turn(grok: MgwServer, turn: Turn) -> None:
    grok.opening = [pack(ev("error", error={"code": "anti_bot", "message": "Request rejected by anti-bot rules."}))]
    batches = await turn()
    assert batches == [[ErrorEvent("Request rejected by anti-bot rules.", anti_bot=True)]]
    assert classify_event(batches[0][0]).kind == FailureKind.EGRESS  # type: ignore[arg-type]
    assert not grok.of("conversation.item.create")


async def test_an_empty_answer_ends_with_a_server_failure(grok: MgwServer, turn: Turn) -> None:
    grok.frames = [pack(ev("response.done", response={"id": "r1", "status": "completed"}))]
    ((failure,),) = await turn()
    assert isinstance(failure, ErrorEvent) and classify_event(failure).kind == FailureKind.SERVER


async def test_a_socket_closed_mid_answer_is_a_connection_error(grok: MgwServer, turn: Turn) -> None:
    grok.frames = ANSWER[:2]
    with pytest.raises(UpstreamConnectionError, match="before the answer completed"):
        await turn()


async def test_a_session_that_never_opens_times_out(grok: MgwServer, turn: Turn) -> None:
    grok.opening = [pack(ev("session.created"))]  # never attached
    with pytest.raises(UpstreamConnectionError, match="in time"):
        await turn(session_timeout=0.2)
    assert not grok.of("conversation.item.create")


@pytest.mark.parametrize(
    ("status", "body", "headers", "kind"),
    [
        (401, '{"error":{"code":16,"message":"unauthenticated"}}', {}, FailureKind.INVALID),
        (403, '{"error":{"code":7,"message":"[WKE=unauthorized:blocked-user]"}}', {}, FailureKind.BLOCKED),
        (403, '{"error":{"code":7,"message":"Request rejected by anti-bot rules."}}', {}, FailureKind.EGRESS),
        (403, "<html>Just a moment...</html>", {"cf-mitigated": "challenge"}, FailureKind.EGRESS),
        (429, '{"error":{"code":8,"message":"Too many requests"}}', {}, FailureKind.RATE_LIMITED),
    ],
)
async def test_handshake_refusals_are_classified(
    grok: MgwServer, turn: Turn, status: int, body: str, headers: dict[str, str], kind: FailureKind
) -> None:
    grok.refusal = (status, body, headers)
    with pytest.raises(UpstreamHTTPError) as info:
        await turn()
    assert info.value.status == status and info.value.body == body
    assert classify(info.value).kind == kind


def test_mgw_urls_follow_the_upstream_scheme() -> None:
    assert mgw_url("https://grok.com", "u-1") == "wss://grok.com/ws/mgw/?uid=u-1"
    assert mgw_url("http://127.0.0.1:8080/", "u 2/x") == "ws://127.0.0.1:8080/ws/mgw/?uid=u%202%2Fx"


def test_the_session_and_turn_messages() -> None:
    first = session_create("heavy", RuntimeSettings())["event"]
    second = session_create("heavy", RuntimeSettings())["event"]
    assert first["event_id"] != second["event_id"] and first["session"]["model"] == "heavy"
    item, response = turn_events("s-1", "hi", [])
    assert item["event"]["item"]["x_grok"]["client_message_id"]
    assert response == {
        "session_id": "s-1",
        "event": {"type": "response.create", "event_id": response["event"]["event_id"]},
    }
