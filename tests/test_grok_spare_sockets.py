"""Spare chat sockets: the pool on its own (with stand-in sockets), turns over real sockets on 127.0.0.1, and
through the gateway against the fake grok.com with the openai SDK."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web

from grok2api.grok.events import End, Event
from grok2api.grok.mgw import stream_mgw
from grok2api.grok.spare_sockets import SpareSockets
from grok2api.grok.transport import Transport, WebSocket
from grok2api.settings import RuntimeSettings
from grok2api.testing.fake_grok import FakeGrok

from harness import LiveGateway, serve_app

# -- the pool ------------------------------------------------------------------------------------------------


class StandIn:
    """A socket that only knows whether it was closed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False
        self.dropped = False  # the peer let it go

    def known_closed(self) -> bool:
        return self.dropped

    async def close(self) -> None:
        self.closed = True


class Opener:
    """Opens stand-ins, each when ``go`` is set (set from the start unless told otherwise)."""

    def __init__(self, fail: bool = False) -> None:
        self.made: list[StandIn] = []
        self.go = asyncio.Event()
        self.go.set()
        self.fail = fail

    async def __call__(self) -> WebSocket:
        await self.go.wait()
        if self.fail:
            raise ConnectionRefusedError("nothing listens")
        ws = StandIn(f"ws{len(self.made)}")
        self.made.append(ws)
        return ws  # type: ignore[return-value]


async def _settled() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_refilled_spare_is_taken_once() -> None:
    spares, open_ = SpareSockets(), Opener()
    assert spares.take("acc", "v1") is None
    spares.refill("acc", "v1", 10, open_)
    await _settled()
    taken: object = spares.take("acc", "v1")
    assert taken is open_.made[0] and not open_.made[0].closed
    assert spares.take("acc", "v1") is None
    assert (spares.opened, spares.taken) == (1, 1)
    await spares.close()


async def test_one_spare_per_key_whether_waiting_or_being_opened() -> None:
    spares, open_ = SpareSockets(), Opener()
    open_.go.clear()
    spares.refill("acc", "v1", 10, open_)
    spares.refill("acc", "v1", 10, open_)  # one is on its way already
    open_.go.set()
    await _settled()
    spares.refill("acc", "v1", 10, open_)  # one is waiting
    spares.refill("other", "v1", 10, open_)  # another account has its own
    await _settled()
    assert len(open_.made) == 2 and len(spares) == 2
    await spares.close()


async def test_an_unused_spare_is_closed_when_it_expires() -> None:
    spares, open_ = SpareSockets(), Opener()
    spares.refill("acc", "v1", 0.05, open_)
    await _settled()
    assert len(spares) == 1
    await asyncio.sleep(0.1)
    await _settled()
    assert open_.made[0].closed and len(spares) == 0 and spares.expired == 1
    assert spares.take("acc", "v1") is None
    await spares.close()


async def test_a_spare_opened_for_other_settings_is_closed_not_used() -> None:
    spares, open_ = SpareSockets(), Opener()
    spares.refill("acc", "v1", 10, open_)
    await _settled()
    assert spares.take("acc", "v2") is None
    await _settled()
    assert open_.made[0].closed and spares.taken == 0
    await spares.close()


async def test_a_spare_known_to_be_closed_is_set_aside() -> None:
    spares, open_ = SpareSockets(), Opener()
    spares.refill("acc", "v1", 10, open_)
    await _settled()
    open_.made[0].dropped = True
    assert spares.take("acc", "v1") is None
    await _settled()
    assert open_.made[0].closed and (spares.stale, spares.taken) == (1, 0)
    await spares.close()


async def test_a_spare_that_cannot_be_opened_is_counted_and_nothing_waits() -> None:
    spares, open_ = SpareSockets(), Opener(fail=True)
    spares.refill("acc", "v1", 10, open_)
    await _settled()
    assert (spares.failed, len(spares)) == (1, 0)
    spares.refill("acc", "v1", 10, open_)  # and the next turn may try again
    await _settled()
    assert spares.failed == 2
    await spares.close()


async def test_the_pool_is_bounded_and_off_with_no_time_to_keep() -> None:
    spares, open_ = SpareSockets(max_spares=2), Opener()
    for key in ("a", "b", "c"):
        spares.refill(key, "v1", 10, open_)
    spares.refill("d", "v1", 0, open_)
    await _settled()
    assert [w.name for w in open_.made] == ["ws0", "ws1"] and len(spares) == 2
    await spares.close()


async def test_closing_closes_the_spares_and_stops_the_openings() -> None:
    spares, open_ = SpareSockets(), Opener()
    spares.refill("a", "v1", 10, open_)
    await _settled()
    open_.go.clear()
    spares.refill("b", "v1", 10, open_)
    await _settled()
    await spares.close()
    assert open_.made[0].closed and len(open_.made) == 1  # the second was never opened
    spares.refill("c", "v1", 10, open_)  # nothing more once closed
    open_.go.set()
    await _settled()
    assert len(open_.made) == 1


async def test_the_metrics_count_what_became_of_the_spares() -> None:
    spares, open_ = SpareSockets(), Opener()
    spares.refill("a", "v1", 10, open_)
    spares.refill("b", "v1", 0.01, open_)
    await _settled()
    spares.take("a", "v1")
    await asyncio.sleep(0.03)
    lines = spares.metric_lines()
    assert 'grok2api_spare_sockets_total{outcome="opened"} 2' in lines
    assert 'grok2api_spare_sockets_total{outcome="taken"} 1' in lines
    assert 'grok2api_spare_sockets_total{outcome="expired"} 1' in lines
    assert "grok2api_spare_sockets 0" in lines
    await spares.close()


def test_only_an_account_that_is_chatting_gets_a_spare() -> None:
    spares = SpareSockets()
    assert spares.turn_began("acc", 10) is False  # its first turn
    assert spares.turn_began("acc", 10) is True  # another within the window
    assert spares.turn_began("acc", 0.0) is False  # one further apart than the window


# -- turns over real sockets ---------------------------------------------------------------------------------


def _frame(kind: str, **fields: Any) -> str:
    return json.dumps({"session_id": "conv-1", "event": {"type": kind, **fields}})


OPENED = _frame("session.created") + _frame(
    "conversation.attached", conversation={"id": "conv-1", "object": "realtime.conversation"}, mode="new"
)
ANSWER = [
    _frame("response.created", response={"id": "r1", "status": "in_progress", "x_grok": {"model": "fast"}}),
    _frame("response.chunk", chunk={"text": {"text": "Hi", "channel": "CHANNEL_ASSISTANT_RESPONSE"}}),
    _frame("response.done", response={"id": "r1", "status": "completed"}),
]


class Grok:
    """``/ws/mgw/``: numbers its connections and answers a session and a turn on each; ``drop`` closes one (as
    grok.com may close a socket that stays silent)."""

    def __init__(self) -> None:
        self.url = ""
        self.connections = 0
        self.sessions: list[int] = []  # the connection each session.create came on
        self.opened_before_session: list[int] = []  # connections opened when each session was asked for
        self.closed: list[int] = []
        self.sockets: dict[int, web.WebSocketResponse] = {}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.connections += 1
        number = self.connections
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets[number] = ws
        try:
            while True:
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                kind = json.loads(msg.data)["event"]["type"]
                if kind == "session.create":
                    self.sessions.append(number)
                    self.opened_before_session.append(self.connections)
                    await ws.send_str(OPENED)
                elif kind == "response.create":
                    for frame in ANSWER:
                        await asyncio.sleep(0.005)
                        await ws.send_str(frame)
        finally:
            self.closed.append(number)
            await ws.close()
        return ws

    async def drop(self, number: int) -> None:
        await self.sockets[number].close()


@pytest.fixture
async def grok() -> AsyncIterator[Grok]:
    server = Grok()
    app = web.Application()
    app.router.add_get("/ws/mgw/", server.handle)
    async with serve_app(app) as server.url:
        yield server


async def _turn(transport: Transport, grok: Grok, spares: SpareSockets, keep: float = 10.0, **kw: Any) -> list[Event]:
    settings = kw.pop("settings", None) or RuntimeSettings(upstream_url=grok.url, spare_socket_seconds=keep)
    stream = stream_mgw(transport, "tok-1", "uid-1", "fast", "hello", [], settings, spares=spares, **kw)
    return [e async for batch in stream for e in batch]


async def _until(check: Any) -> None:
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never happened")


async def test_a_chatting_accounts_next_turn_starts_on_a_socket_opened_before_it(
    grok: Grok, transport: Transport
) -> None:
    spares = SpareSockets()
    settings = RuntimeSettings(upstream_url=grok.url, spare_socket_seconds=10)
    assert (await _turn(transport, grok, spares, settings=settings))[-1] == End("Hi", "fast")
    assert len(spares) == 0 and grok.connections == 1  # one turn: the account may not be back soon
    await _turn(transport, grok, spares, settings=settings)  # a second within the window: a spare opens
    await _until(lambda: len(spares) == 1)
    assert grok.connections == 3
    sent: list[int] = []
    events = await _turn(transport, grok, spares, settings=settings, on_sent=lambda: sent.append(grok.connections))
    assert events[-1] == End("Hi", "fast")
    assert sent == [3]  # the query was asked for at once, no handshake to wait for
    assert grok.sessions == [1, 2, 3] and grok.opened_before_session[-1] == 3  # the spare took the turn
    assert spares.taken == 1
    await spares.close()
    await _until(lambda: len(grok.closed) == grok.connections)


async def test_a_spare_grok_dropped_meanwhile_gives_way_to_a_fresh_socket(grok: Grok, transport: Transport) -> None:
    spares = SpareSockets()
    settings = RuntimeSettings(upstream_url=grok.url, spare_socket_seconds=10)
    for _ in range(2):
        await _turn(transport, grok, spares, settings=settings)
    await _until(lambda: len(spares) == 1)
    await grok.drop(3)  # grok.com ended the silent spare
    await _until(lambda: 3 in grok.closed)
    sent: list[int] = []
    events = await _turn(transport, grok, spares, settings=settings, on_sent=lambda: sent.append(1))
    assert events[-1] == End("Hi", "fast")
    assert grok.sessions[-1] == 4 and spares.stale == 1 and sent == [1]  # the query asked for once
    await spares.close()


async def test_no_spares_when_switched_off(grok: Grok, transport: Transport) -> None:
    spares = SpareSockets()
    for _ in range(3):
        await _turn(transport, grok, spares, keep=0)
    await asyncio.sleep(0.05)
    assert grok.connections == 3 and spares.opened == 0
    await spares.close()


async def test_an_abandoned_turn_opens_no_spare(grok: Grok, transport: Transport) -> None:
    spares = SpareSockets()
    settings = RuntimeSettings(upstream_url=grok.url, spare_socket_seconds=10)
    await _turn(transport, grok, spares, settings=settings)
    stream = stream_mgw(transport, "tok-1", "uid-1", "fast", "hello", [], settings, spares=spares)
    await anext(stream)  # the turn is abandoned before its answer
    await stream.aclose()
    await asyncio.sleep(0.05)
    assert spares.opened == 0 and len(spares) == 0
    await spares.close()


# -- through the gateway -------------------------------------------------------------------------------------


@pytest.fixture
def gateway_env() -> dict[str, str]:
    return {"GROK2API_SPARE_SOCKET_SECONDS": "10"}


async def test_through_the_gateway_a_chatting_accounts_turn_finds_its_socket_open(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    await gateway.add_accounts("tok-chatty")

    async def ask() -> str:
        stream = await client.chat.completions.create(
            model="grok-3-fast", messages=[{"role": "user", "content": "[[tokens:3]] hi"}], stream=True
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    first, second = await ask(), await ask()
    await _until(lambda: len(fake.mgw_sessions()) == 3)  # the second turn opened the third's socket
    asked_at = time.time()
    third = await ask()
    assert first == second == third != ""
    answered = [r for r in fake.mgw_sessions() if r.responses]
    assert len(answered) == 3 and answered[2].time < asked_at  # open before the request was sent
    async with aiohttp.ClientSession() as http, http.get(f"{gateway.url}/metrics") as resp:
        metrics = (await resp.text()).splitlines()
    assert 'grok2api_spare_sockets_total{outcome="taken"} 1' in metrics
    await gateway.stop()  # and the spare opened after the third turn is closed with the gateway
    await _until(lambda: all(r.closed for r in fake.mgw_sessions()))


async def test_through_the_gateway_a_spare_grok_let_go_is_replaced_unseen(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    await gateway.add_accounts("tok-chatty")
    fake.mgw_idle_seconds = 0.2  # grok.com drops the silent spare long before the gateway would retire it

    async def ask() -> str:
        answer = await client.chat.completions.create(
            model="grok-3-fast", messages=[{"role": "user", "content": "[[tokens:3]] hi"}]
        )
        return answer.choices[0].message.content or ""

    await ask()
    await ask()
    await _until(lambda: any(r.idle_closed for r in fake.mgw_sessions()))
    assert await ask() == "tok0 tok1 tok2"  # the turn went on over a fresh socket, no error and no retry
    spare = next(r for r in fake.mgw_sessions() if r.idle_closed)
    assert not spare.received  # nothing was said on it
    assert [r.refused for r in fake.mgw_sessions() if r.responses] == [None] * 3
    assert gateway.services.client.spares.stale == 1
    assert sum(a.requests_failed for a in await gateway.services.store.list_accounts()) == 0
