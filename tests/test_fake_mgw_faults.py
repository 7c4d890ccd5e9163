"""What goes wrong on the fake grok.com's mgw socket: refused handshakes (and reading their bodies back), modes the
account may not use, empty windows, and every in-stream fault, pushed or by marker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from fake_mgw_client import MgwClient, handshake_headers, of_type, text_by_channel, types

from grok2api.testing.fake_grok import UNKNOWN_CHANNEL, UNKNOWN_CHUNK, UNKNOWN_EVENT, FakeGrok

Connect = Callable[..., Awaitable[MgwClient]]
USAGE_LIMIT = "You've reached your usage limit. Please try again later."


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def connect(fake: FakeGrok, http: aiohttp.ClientSession) -> AsyncIterator[Connect]:
    sockets: list[aiohttp.ClientWebSocketResponse] = []

    async def open_socket(token: str = "tok-a", mode: str = "fast", **x_grok: object) -> MgwClient:
        ws = await http.ws_connect(fake.mgw_url(fake.user_id(token)), headers=handshake_headers(fake, token))
        sockets.append(ws)
        client = MgwClient(ws)
        await client.create(mode, **x_grok)
        return client

    yield open_socket
    for ws in sockets:
        await ws.close()


async def _refused(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[int, str, str]:
    """The status of a refused handshake, then the body and type a plain GET of the same URL reads."""
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(url, headers=headers)
    async with http.get(url, headers=headers) as r:
        assert r.status == refused.value.status
        return r.status, await r.text(), r.headers.get("Content-Type", "")


# ------------------------------------------------------------------------------------------------ handshake


async def test_handshake_identity_and_origin(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    uid = fake.user_id("tok-a")
    url = fake.mgw_url(uid)
    good = handshake_headers(fake, "tok-a")
    status, body, ctype = await _refused(http, url, handshake_headers(fake, "invalid-x", uid=uid))
    assert status == 401 and "invalid-credentials" in body and ctype.startswith("application/json")
    status, body, _ = await _refused(http, url, good | {"Cookie": "sso=tok-a; sso-rw=tok-a"})  # no x-userid
    assert status == 401
    status, _, _ = await _refused(http, fake.mgw_url("00000000-0000-4000-8000-000000000000"), good)
    assert status == 401
    status, body, _ = await _refused(http, url, handshake_headers(fake, "tok-a", origin="https://evil.example"))
    assert status == 403 and '"code":7' in body and "anti-bot" in body
    ws = await http.ws_connect(url, headers=handshake_headers(fake, "tok-a", origin="https://grok.com"))
    await ws.close()
    fake.block("tok-a")
    status, body, _ = await _refused(http, url, good)
    assert status == 403 and "blocked-user" in body
    refused = [r.refused for r in fake.mgw_sessions("tok-a")]
    assert refused == [401, 401, 403, None, 403]


HANDSHAKE_FAULTS = [
    ("mgw-401", 401, "invalid-credentials"),
    ("mgw-403-blocked", 403, "blocked-user"),
    ("mgw-403-antibot", 403, "Request rejected by anti-bot rules."),
    ("mgw-403-cf", 403, "Just a moment..."),
    ("mgw-429:7", 429, "Too many requests"),
    ("mgw-503", 503, "503 Service Unavailable"),
    ("429", 429, "Too many requests"),  # a chat fault: the socket takes it at the handshake
]


@pytest.mark.parametrize(("fault", "status", "text"), HANDSHAKE_FAULTS)
async def test_handshake_refusals_and_their_bodies(
    fake: FakeGrok, http: aiohttp.ClientSession, fault: str, status: int, text: str
) -> None:
    url, headers = fake.mgw_url(fake.user_id("tok-a")), handshake_headers(fake, "tok-a")
    fake.push_fault(fault)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(url, headers=headers)
    assert refused.value.status == status
    if fault == "mgw-403-cf":
        assert refused.value.headers is not None and refused.value.headers["cf-mitigated"] == "challenge"
    if fault == "mgw-429:7":
        assert refused.value.headers is not None and refused.value.headers["Retry-After"] == "7"
    async with http.get(url, headers=headers) as r:  # the body the handshake error hid
        assert r.status == status and text in await r.text()
        if fault == "mgw-403-cf":
            assert r.headers["cf-mitigated"] == "challenge" and r.headers["Content-Type"].startswith("text/html")
    async with http.get(url, headers=headers) as r:  # read once; then the plain GET is just not an upgrade
        assert r.status == 426
    ws = await http.ws_connect(url, headers=headers)  # the fault was used up
    await ws.close()


async def test_handshake_fault_scoped_to_token(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    fake.push_fault("mgw-403-cf", token="tok-b", count=2)
    ws = await http.ws_connect(fake.mgw_url(fake.user_id("tok-a")), headers=handshake_headers(fake, "tok-a"))
    await ws.close()
    for _ in range(2):
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(fake.mgw_url(fake.user_id("tok-b")), headers=handshake_headers(fake, "tok-b"))


# ------------------------------------------------------------------------------------------------ modes and quota


async def test_unknown_mode_tier_and_availability(fake: FakeGrok, connect: Connect) -> None:
    stray = await connect("tok-a", mode="heavy")  # basic tier: heavy is not offered
    events = await stray.answer("x")
    assert [e["error"] for e in of_type(events, "error")] == [
        {"code": "permission_denied", "message": "The requested model is not available for your subscription tier"}
    ]
    assert "response.created" not in types(events)
    fake.add_mode("grok-420-computer-use-sa", quotas={"basic": 2})
    beta = await connect("tok-a", mode="grok-420-computer-use-sa")
    assert text_by_channel(await beta.answer("x"))["CHANNEL_ASSISTANT_RESPONSE"] == "Hello! You said: x"
    assert fake.account("tok-a").window("grok-420-computer-use-sa").remaining == 1
    fake.set_mode_available("fast", False)
    fast = await connect("tok-a", mode="fast")
    assert of_type(await fast.answer("x"), "error")[0]["error"]["code"] == "unavailable"


async def test_unknown_model_at_session_create(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    ws = await http.ws_connect(fake.mgw_url(fake.user_id("tok-a")), headers=handshake_headers(fake, "tok-a"))
    client = MgwClient(ws)
    await client.send({"type": "session.create", "event_id": "e", "session": {"model": "grok-3"}}, session=False)
    events = await client.read()
    assert [e["error"] for e in of_type(events, "error")] == [
        {"code": "invalid_argument", "message": "Unknown model: grok-3"}
    ]
    await ws.close()


async def test_empty_window_is_a_usage_limit_error(fake: FakeGrok, connect: Connect) -> None:
    fake.add_account("tok-q", quotas={"auto": 1})
    client = await connect("tok-q", mode="auto")
    assert "response.done" in types(await client.answer("one"))
    events = await client.answer("two")
    assert [e["error"] for e in of_type(events, "error")] == [{"code": "resource_exhausted", "message": USAGE_LIMIT}]
    assert fake.account("tok-q").window("auto").remaining == 0 and fake.account("tok-q").remaining == 30
    fake.account("tok-q").end_windows()
    assert "response.done" in types(await client.answer("three"))


# ------------------------------------------------------------------------------------------------ in-stream faults


def _answer_text(events: list[dict[str, object]]) -> str:
    return text_by_channel(events).get("CHANNEL_ASSISTANT_RESPONSE", "")


async def test_antibot_event_before_the_response(fake: FakeGrok, connect: Connect) -> None:
    client = await connect()
    fake.push_fault("mgw-antibot")
    events = await client.answer("x")
    assert types(events) == ["error"] and events[0]["event"]["error"]["code"] == "anti_bot"
    assert fake.account("tok-a").remaining == 30  # refused before it started: no query spent
    events = await client.answer("x [[fault:403-antibot]]")  # the marker spelling
    assert types(events) == ["error"] and events[0]["event"]["error"]["code"] == "anti_bot"
    events = await client.answer("x [[fault:inband-7]]")  # the REST chat's anti-bot error line, mapped
    assert types(events) == ["error"] and events[0]["event"]["error"]["code"] == "anti_bot"


MID_FAULTS = [
    ("usage", "error", USAGE_LIMIT),
    ("inband-usage", "error", USAGE_LIMIT),  # a REST chat fault, mapped
    ("inband-13", "error", "Internal error"),
    ("stream-error", "response.grok.output", "Upstream stream interrupted"),
    ("model-error", "response.grok.output", "Upstream stream interrupted"),
    ("failed", "response.done", "failed"),
]


@pytest.mark.parametrize(("fault", "last", "detail"), MID_FAULTS)
async def test_failures_after_two_chunks(fake: FakeGrok, connect: Connect, fault: str, last: str, detail: str) -> None:
    client = await connect()
    events = await client.answer(f"[[tokens:5]] [[fault:{fault}]]")
    assert _answer_text(events) == "tok0 tok1 "
    assert types(events)[-1] == last and detail in str(events[-1]["event"])
    assert fake.account("tok-a").remaining == 29
    pushed = await connect("tok-b")
    fake.push_fault(fault if fault in ("inband-usage", "model-error") else f"mgw-{fault}")
    assert types(await pushed.answer("[[tokens:5]]"))[-1] == last


async def test_session_ended_and_close(fake: FakeGrok, connect: Connect) -> None:
    client = await connect()
    events = await client.answer("[[tokens:5]] [[fault:session-ended]]")
    assert types(events)[-1] == "session.ended" and "response.done" not in types(events) and client.closed
    assert client.ws.close_code == 1000
    cut = await connect()
    fake.push_fault("reset")  # the REST chat's reset is a cut socket here too
    events = await cut.answer("[[tokens:5]]")
    assert _answer_text(events) == "tok0 tok1 " and cut.closed and "response.done" not in types(events)


async def test_empty_answer_and_unknown_types(connect: Connect) -> None:
    client = await connect()
    events = await client.answer("x [[fault:empty]]")
    assert _answer_text(events) == "" and of_type(events, "response.done")[0]["response"]["status"] == "completed"
    assert of_type(events, "response.output_text.done")[0]["text"] == ""
    events = await client.answer("x [[fault:unknown]]")
    assert UNKNOWN_EVENT in types(events) and _answer_text(events) == "Hello! You said: x"
    kinds = {k for c in of_type(events, "response.chunk") for k in c["chunk"]}
    assert UNKNOWN_CHUNK in kinds and UNKNOWN_CHANNEL in text_by_channel(events)
    delta = await connect(use_chunk=False)
    events = await delta.answer("x [[fault:unknown]]")
    assert UNKNOWN_EVENT in types(events)
    assert any(UNKNOWN_CHUNK in o["output"] for o in of_type(events, "response.grok.output"))


async def test_framing_faults(connect: Connect) -> None:
    client = await connect()
    events = await client.answer("[[tokens:4]] [[fault:malformed]]")
    assert _answer_text(events) == "tok0 tok1 tok2 tok3 " and any(f.endswith('"bro') for f in client.frames)
    client.frames.clear()
    events = await client.answer("[[tokens:4]] [[fault:blank]]")
    assert _answer_text(events) == "tok0 tok1 tok2 tok3 " and "" in client.frames
    client.frames.clear()
    events = await client.answer("[[tokens:6]] [[fault:multi-json]]")
    assert _answer_text(events) == "".join(f"tok{i} " for i in range(6))
    assert all(f.count('"event_id"') == 2 for f in client.frames if '"tok' in f)
    events = await client.answer("[[tokens:3]] [[fault:long-line]]")
    assert len(_answer_text(events)) > 1 << 20 and "response.done" in types(events)


async def test_timing_faults(fake: FakeGrok, connect: Connect) -> None:
    client = await connect()
    for prompt, minimum in (
        ("[[tokens:6]] [[fault:slow-tokens:0.04]]", 0.2),
        ("[[tokens:4]] [[fault:stall-mid:0.3]]", 0.3),
        ("[[tokens:4]] [[fault:stall-first:0.3]]", 0.3),
    ):
        started = time.monotonic()
        await client.ask(prompt)
        events = await client.read(until=lambda e: e["event"]["type"] == "response.done", idle=2.0)
        assert time.monotonic() - started >= minimum and types(events)[-1] == "response.done"
        await client.read(idle=0.2)
    fake.push_fault("mgw-stall-first:0.5")
    await client.ask("x")
    assert await client.read(idle=0.2) == []  # nothing before response.created for a while
    assert "response.done" in types(await client.read(idle=1.0))


async def test_stalled_answer_stops_when_the_client_leaves(fake: FakeGrok, connect: Connect) -> None:
    client = await connect()
    await client.ask("[[tokens:4]] [[fault:stall-mid:30]]")
    await client.read(idle=0.3)
    await client.ws.close()
    for _ in range(100):
        if fake.account("tok-a").in_flight == 0 and fake.mgw_sessions("tok-a")[0].closed:
            break
        await asyncio.sleep(0.02)
    assert fake.account("tok-a").in_flight == 0 and fake.mgw_sessions("tok-a")[0].closed
