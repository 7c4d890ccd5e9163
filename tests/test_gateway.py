"""The gateway end to end: real timers for first-byte, idle and total timeouts, client disconnects, and
failover to another account before the first byte (never after)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import msgspec
import openai
import pytest

from grok2api.after_response import drain
from grok2api.store.base import AccountPatch, AccountState, ModeQuota
from grok2api.testing.fake_grok import FakeGrok, MgwRecord

from harness import UPSTREAM_TRANSPORTS, LiveGateway, sse_frames, upstream_chats

MODEL = "grok-3-fast"


@pytest.fixture(params=UPSTREAM_TRANSPORTS)
def gateway_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Every test here runs through both transports: failover, timeouts and cancellation must not depend
    on which one carries the call."""
    return {"GROK2API_UPSTREAM_TRANSPORT": request.param}


STALL = 2.0  # seconds the fake stalls; every timeout test must finish well before it


def body(text: str, stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], "stream": stream, **extra}


async def post(gateway: LiveGateway, payload: dict[str, Any]) -> tuple[int, bytes, float]:
    started = time.monotonic()
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{gateway.url}/v1/chat/completions", json=payload) as resp,
    ):
        raw = await resp.read()
        return resp.status, raw, time.monotonic() - started


def sse(raw: bytes) -> tuple[list[dict[str, Any]], str]:
    """(JSON chunks, last frame) of an SSE body."""
    *chunks, last = sse_frames(raw)
    return [msgspec.json.decode(c) for c in chunks], last


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c.get("choices"))


async def wait_for(check: Callable[[], bool], within: float) -> float:
    """Poll ``check`` until it holds; return the time it took (fails after ``within`` seconds)."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < within, "condition not reached in time"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def account_ids(gateway: LiveGateway) -> dict[str, int]:
    return {a.token: a.id for a in await gateway.services.store.list_accounts()}


def chats(fake: FakeGrok) -> list[MgwRecord]:
    """Every chat socket the gateway opened, refused handshakes included, in order."""
    return fake.mgw_sessions()


# ---- timeouts ----------------------------------------------------------------------------------


async def test_first_byte_timeout_non_stream_is_504(gateway: LiveGateway, fake: FakeGrok) -> None:
    await gateway.add_accounts("tok1")
    await gateway.settings(stream_first_response_timeout=0.5)
    status, raw, elapsed = await post(gateway, body(f"hi [[fault:stall-first:{STALL}]]"))
    assert status == 504
    err = msgspec.json.decode(raw)["error"]
    assert (err["type"], err["code"]) == ("timeout_error", "upstream_timeout")
    assert 0.4 < elapsed < 1.5
    assert len(chats(fake)) == 1  # not retried: the first-response budget is spent
    ids = await account_ids(gateway)
    assert gateway.services.pool.in_flight(ids["tok1"]) == 0


async def test_first_byte_timeout_stream_ends_cleanly(gateway: LiveGateway, client: openai.AsyncOpenAI) -> None:
    await gateway.add_accounts("tok1")
    await gateway.settings(stream_first_response_timeout=0.5)
    status, raw, elapsed = await post(gateway, body(f"hi [[fault:stall-first:{STALL}]]", stream=True))
    assert status == 200
    assert elapsed < 1.5
    chunks, last = sse(raw)
    assert last == "[DONE]"
    assert [c["choices"][0]["delta"] for c in chunks] == [{"role": "assistant", "content": ""}, {}]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, "stop"]
    assert len({c["id"] for c in chunks}) == 1

    started = time.monotonic()
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": f"again [[fault:stall-first:{STALL}]]"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    items = [c async for c in stream]
    assert time.monotonic() - started < 1.5
    assert items[-2].choices[0].finish_reason == "stop"
    assert items[-1].usage is not None and items[-1].usage.completion_tokens == 0


def cut_off(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """The error a cut stream ends with; no chunk may claim the answer finished."""
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1] if c.get("choices")), chunks
    assert set(chunks[-1]) == {"error"}, chunks[-1]
    error: dict[str, Any] = chunks[-1]["error"]
    return error


@pytest.mark.parametrize("chat_transport", ["ws", "rest"], indirect=True)
async def test_idle_timeout_mid_stream(gateway: LiveGateway, fake: FakeGrok, chat_transport: str) -> None:
    await gateway.add_accounts("tok1")
    await gateway.settings(stream_chunk_timeout=0.5)
    status, raw, elapsed = await post(gateway, body(f"hi [[fault:stall-mid:{STALL}]]", stream=True))
    assert status == 200
    assert elapsed < 1.5
    chunks, last = sse(raw)
    assert last == "[DONE]"
    error = cut_off(chunks)
    assert (error["type"], error["code"]) == ("timeout_error", "upstream_timeout")
    assert "stalled mid-answer" in error["message"] and "first-response" not in error["message"]
    assert text_of(chunks) == "Hello! You "  # the two tokens before the stall, nothing after
    ids = await account_ids(gateway)
    await wait_for(lambda: gateway.services.pool.in_flight(ids["tok1"]) == 0, 1.0)
    await wait_for(lambda: fake.account("tok1").in_flight == 0, 1.0)


async def test_idle_timeout_mid_answer_non_stream_is_504(gateway: LiveGateway) -> None:
    await gateway.add_accounts("tok1")
    await gateway.settings(stream_chunk_timeout=0.5)
    status, raw, elapsed = await post(gateway, body(f"hi [[fault:stall-mid:{STALL}]]"))
    assert status == 504
    error = msgspec.json.decode(raw)["error"]
    assert error["code"] == "upstream_timeout" and "stalled mid-answer" in error["message"]
    assert elapsed < 1.5


async def test_a_connection_broken_mid_answer_is_an_error_not_a_finish(gateway: LiveGateway) -> None:
    await gateway.add_accounts("tok1")
    status, raw, _ = await post(
        gateway, body("hi [[fault:close]]", stream=True, stream_options={"include_usage": True})
    )
    chunks, last = sse(raw)
    assert status == 200 and last == "[DONE]"
    usage = chunks.pop()  # usage still comes last when asked for
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] > 0
    error = cut_off(chunks)
    assert error["type"] == "upstream_error" and "broke mid-answer" in error["message"]
    status, raw, _ = await post(gateway, body("hi [[fault:close]]"))
    error = msgspec.json.decode(raw)["error"]
    assert status == 502 and "broke mid-answer" in error["message"]


async def test_total_timeout_cuts_a_slow_stream(gateway: LiveGateway) -> None:
    await gateway.add_accounts("tok1")
    await gateway.settings(stream_total_timeout=1.0)
    status, raw, elapsed = await post(gateway, body("[[fault:slow-tokens:0.1]] [[tokens:60]]", stream=True))
    assert status == 200
    assert 0.8 < elapsed < 2.5  # the full answer would take about 6 s
    chunks, last = sse(raw)
    assert last == "[DONE]"
    error = cut_off(chunks)
    assert error["code"] == "upstream_timeout" and "stream_total_timeout (1 s)" in error["message"]
    received = text_of(chunks).split()
    assert 2 <= len(received) < 60
    assert received == [f"tok{i}" for i in range(len(received))]


async def test_slow_but_steady_stream_is_not_cut(gateway: LiveGateway) -> None:
    await gateway.add_accounts("tok1")
    await gateway.settings(stream_chunk_timeout=0.5, stream_first_response_timeout=0.5)
    status, raw, _ = await post(gateway, body("[[fault:slow-tokens:0.1]] [[tokens:8]]", stream=True))
    assert status == 200
    chunks, last = sse(raw)
    assert last == "[DONE]" and chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert text_of(chunks) == "".join(f"tok{i} " for i in range(8))


async def test_an_answers_reads_share_one_timer_that_still_cuts_a_stall() -> None:
    from collections.abc import AsyncGenerator

    from grok2api.gateway import _TimedReads
    from grok2api.grok.events import Event, Text

    async def answer() -> AsyncGenerator[list[Event], None]:
        for i in range(5):
            await asyncio.sleep(0.01)
            yield [Text(str(i))]
        await asyncio.sleep(30)  # stalls
        yield []

    loop = asyncio.get_running_loop()
    reads, source = _TimedReads(loop), answer()
    assert await reads.next(source, loop.time() + 0.5) == [Text("0")]
    timer = reads.timer
    for i in range(1, 5):  # each read moves the deadline on; the timer set by the first serves them all
        assert await reads.next(source, loop.time() + 0.5) == [Text(str(i))]
    assert reads.timer is timer
    with pytest.raises(TimeoutError):  # an earlier deadline moves the timer forward, and a stall is cut
        await reads.next(source, loop.time() + 0.05)
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0  # the timeout's own cancellation is spent
    reads.close()
    await source.aclose()

    async def stalled() -> AsyncGenerator[list[Event], None]:
        await asyncio.sleep(30)
        yield []

    async def cancelled_from_outside() -> None:
        await reads.next(stalled(), loop.time() + 30)

    task = asyncio.ensure_future(cancelled_from_outside())
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):  # a cancellation that is not the timer's stays one
        await task
    reads.close()


# ---- client disconnect -------------------------------------------------------------------------


async def test_client_disconnect_cancels_the_upstream_call(gateway: LiveGateway, fake: FakeGrok) -> None:
    await gateway.add_accounts("tok1")
    ids = await account_ids(gateway)
    pool = gateway.services.pool
    async with aiohttp.ClientSession() as http:
        resp = await http.post(
            f"{gateway.url}/v1/chat/completions", json=body("[[fault:slow-tokens:0.2]] [[tokens:50]]", stream=True)
        )
        assert resp.status == 200
        data_lines = 0
        async for line in resp.content:
            data_lines += line.startswith(b"data: ")
            if data_lines == 2:
                break
        assert pool.in_flight(ids["tok1"]) == 1
        assert fake.account("tok1").in_flight == 1
        resp.close()
    # the whole answer would take 10 s; both sides must let go long before that
    await wait_for(lambda: fake.account("tok1").in_flight == 0, 3.0)
    await wait_for(lambda: pool.in_flight(ids["tok1"]) == 0, 3.0)
    (account,) = await gateway.services.store.list_accounts()
    assert account.state == AccountState.ACTIVE


@pytest.mark.parametrize(
    ("marker", "stream"),
    [
        ("[[fault:slow-tokens:0.2]] [[tokens:50]]", False),  # mid-answer, non-stream
        ("[[fault:stall-first:10]]", False),  # still waiting for the first byte, non-stream
        ("[[fault:stall-first:20]]", True),  # a stream that has not started yet
    ],
)
async def test_client_disconnect_cancels_a_request_that_has_not_streamed(
    gateway: LiveGateway, fake: FakeGrok, marker: str, stream: bool
) -> None:
    fake.add_account("tok1")
    await gateway.add_accounts("tok1")
    ids = await account_ids(gateway)
    pool = gateway.services.pool
    async with aiohttp.ClientSession() as http:

        async def ask() -> int:
            async with http.post(f"{gateway.url}/v1/chat/completions", json=body(marker, stream=stream)) as resp:
                return resp.status

        request = asyncio.ensure_future(ask())
        await wait_for(lambda: fake.account("tok1").in_flight == 1, 3.0)
        assert pool.in_flight(ids["tok1"]) == 1
        request.cancel()  # the client gives up and closes its connection
        with pytest.raises(asyncio.CancelledError):
            await request
    # Released long before the answer (or the first-response timeout) would have come.
    await wait_for(lambda: fake.account("tok1").in_flight == 0, 3.0)
    await wait_for(lambda: pool.in_flight(ids["tok1"]) == 0, 3.0)
    (account,) = await gateway.services.store.list_accounts()
    assert account.state == AccountState.ACTIVE and account.requests_failed == 0


# ---- failover ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["500", "503", "429", "401", "mgw-503", "mgw-empty"])
async def test_failover_before_the_first_byte(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok, fault: str
) -> None:
    await gateway.add_accounts("tok1", "tok2")
    fake.push_fault(fault)  # the next chat fails, whichever account makes it
    resp = await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert resp.choices[0].message.content == "Hello! You said: hi"
    first, second = chats(fake)
    assert {first.token, second.token} == {"tok1", "tok2"}
    assert second.refused is None and second.responses
    ids = await account_ids(gateway)
    await drain()
    assert all(gateway.services.pool.in_flight(i) == 0 for i in ids.values())
    failed = await gateway.services.store.get_account(first.token or "")
    assert failed is not None
    # The account stays active whatever the fault; a usage limit empties only the fast window.
    assert failed.state == AccountState.ACTIVE and failed.last_failure and failed.requests_failed == 1
    limited = fault == "429"
    assert (failed.remaining == 0) is limited
    assert failed.failure_count == (1 if fault == "401" else 0)


async def test_stream_fails_over_before_the_first_byte(gateway: LiveGateway, fake: FakeGrok) -> None:
    await gateway.add_accounts("tok1", "tok2")
    fake.push_fault("502")
    status, raw, _ = await post(gateway, body("hi", stream=True))
    assert status == 200
    chunks, last = sse(raw)
    assert last == "[DONE]" and text_of(chunks) == "Hello! You said: hi"
    assert [c.refused for c in chats(fake)] == [502, None]


@pytest.mark.parametrize(
    ("fault", "kind"), [("inband-13", "upstream_error"), ("usage", "requests"), ("close", "upstream_error")]
)
async def test_no_failover_after_the_first_byte(gateway: LiveGateway, fake: FakeGrok, fault: str, kind: str) -> None:
    await gateway.add_accounts("tok1", "tok2")
    status, raw, _ = await post(gateway, body(f"hi [[fault:{fault}]]", stream=True))
    assert status == 200
    frames = raw.decode().strip().split("\n\n")
    assert frames[-1] == "data: [DONE]"
    error = msgspec.json.decode(frames[-2].removeprefix("data: "))
    assert set(error) == {"error"} and error["error"]["type"] == kind
    chunks = [msgspec.json.decode(f.removeprefix("data: ")) for f in frames[:-2]]
    assert text_of(chunks) == "Hello! You "  # what had been sent stays; nothing is replayed
    (chat,) = chats(fake)
    await drain()  # the account is settled once the response's last byte is out
    served = await gateway.services.store.get_account(chat.token or "")
    assert served is not None and served.state == AccountState.ACTIVE
    if fault == "usage":  # a usage limit mid-answer still empties that mode's window
        assert served.remaining == 0 and served.requests_ok == 0 and "fast resumes in" in served.last_failure
    if fault == "inband-13":
        assert "Internal error" in error["error"]["message"]


async def test_egress_block_is_not_retried_on_other_accounts(gateway: LiveGateway, fake: FakeGrok) -> None:
    await gateway.add_accounts("tok1", "tok2")
    status, raw, _ = await post(gateway, body("hi [[fault:antibot]]"))  # the chat's anti_bot error event
    assert status == 502
    err = msgspec.json.decode(raw)["error"]
    assert err["code"] == "egress_blocked" and "cf_clearance" in err["message"]
    assert len(chats(fake)) == 1
    accounts = await gateway.services.store.list_accounts()
    assert all(a.state == AccountState.ACTIVE and not a.last_failure and a.requests_failed == 0 for a in accounts)
    assert all(a.requests_ok == 0 for a in accounts)  # and no success either


@pytest.mark.parametrize("handshake", [False, True])
async def test_attempts_are_capped_by_max_attempts(gateway: LiveGateway, fake: FakeGrok, handshake: bool) -> None:
    await gateway.add_accounts("tok1", "tok2", "tok3", "tok4")
    await gateway.settings(max_attempts=2)
    if handshake:
        fake.push_fault("mgw-500", count=10)
    # The marker is an error event before any answer, in every attempt; the pushed fault refuses each handshake.
    status, raw, _ = await post(gateway, body("hi" if handshake else "hi [[fault:500]]"))
    assert status == 502
    assert [c.refused for c in chats(fake)] == ([500, 500] if handshake else [None, None])
    assert len({c.token for c in chats(fake)}) == 2


# ---- 429s ----------------------------------------------------------------------------------------


async def post_with_headers(
    gateway: LiveGateway, payload: dict[str, Any], **headers: str
) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{gateway.url}/v1/chat/completions", json=payload, headers=headers) as resp,
    ):
        return resp.status, msgspec.json.decode(await resp.read()), dict(resp.headers)


def assert_rate_limited(status: int, answer: dict[str, Any], headers: dict[str, str]) -> int:
    """OpenAI's 429: type ``requests``, code ``rate_limit_exceeded``, and Retry-After in whole seconds."""
    assert status == 429, answer
    assert (answer["error"]["type"], answer["error"]["code"]) == ("requests", "rate_limit_exceeded"), answer
    retry = headers["Retry-After"]
    assert retry.isdigit() and int(retry) >= 1, retry
    return int(retry)


@pytest.mark.parametrize(
    ("chat_transport", "fault"), [("ws", "mgw-429:7"), ("rest", "429:7")], indirect=["chat_transport"]
)
async def test_a_429_from_grok_com_keeps_its_retry_after(
    gateway: LiveGateway, fake: FakeGrok, chat_transport: str, fault: str
) -> None:
    await gateway.add_accounts("tok1")
    await gateway.settings(max_attempts=1)
    fake.push_fault(fault)  # the handshake (or the REST call) is refused with 429 and Retry-After: 7
    status, answer, headers = await post_with_headers(gateway, body("hi"))
    assert assert_rate_limited(status, answer, headers) == 7


async def test_a_429_grok_com_gave_no_time_for_waits_until_the_pool_expects_room(gateway: LiveGateway) -> None:
    await gateway.add_accounts("tok1", "tok2")
    await gateway.settings(default_cooldown_seconds=900)
    status, answer, headers = await post_with_headers(gateway, body("hi [[fault:429]]"))
    # Both accounts tried, both windows emptied for the default cooldown: that is the earliest room.
    assert 890 <= assert_rate_limited(status, answer, headers) <= 900


async def test_a_usage_limit_mid_answer_is_a_429_with_retry_after(gateway: LiveGateway) -> None:
    await gateway.add_accounts("tok1", "tok2")
    await gateway.settings(default_cooldown_seconds=600)
    status, answer, headers = await post_with_headers(gateway, body("hi [[fault:inband-8]]"))
    assert 590 <= assert_rate_limited(status, answer, headers) <= 600
    assert "usage limit" in answer["error"]["message"]


async def test_pool_exhaustion_and_key_rpm_are_429s_of_the_same_shape(gateway: LiveGateway) -> None:
    from grok2api.admin import keys_ops

    status, answer, headers = await post_with_headers(gateway, body("hi"))
    assert status == 503  # no account at all is not a rate limit
    await gateway.add_accounts("tok1")
    await gateway.services.store.update_account("tok1", AccountPatch(quotas={"fast": ModeQuota(remaining=0)}))
    await gateway.services.reload(force=True)
    status, answer, headers = await post_with_headers(gateway, body("hi"))
    assert_rate_limited(status, answer, headers)

    request = keys_ops.KeyRequest(name="limited", models=[], rpm=1, expires_at=None)
    _, secret = await keys_ops.create(gateway.services, request)
    auth = {"Authorization": f"Bearer {secret}"}
    await post_with_headers(gateway, body("hi"), **auth)  # the key's one request this minute
    status, answer, headers = await post_with_headers(gateway, body("hi"), **auth)
    assert assert_rate_limited(status, answer, headers) <= 60
    assert "1 requests per minute" in answer["error"]["message"]


# ---- the account's query is taken while the WebSocket is set up -------------------------------------


class GatedReserve:
    """The store's ``reserve``, held until ``open()``; ``refuse`` tokens' accounts are refused (as when another
    worker spent their window meanwhile)."""

    def __init__(self, gateway: LiveGateway, refuse: set[int] | None = None) -> None:
        self.real = gateway.services.store.reserve
        self.gate = asyncio.Event()
        self.refuse = refuse or set()
        self.asked: list[int] = []

    async def __call__(self, account_id: int, mode: str) -> bool:
        self.asked.append(account_id)
        await self.gate.wait()
        if account_id in self.refuse:
            return False
        return await self.real(account_id, mode)


async def test_the_websocket_opens_while_the_query_is_taken_and_nothing_is_sent_before(
    gateway: LiveGateway, fake: FakeGrok, monkeypatch: pytest.MonkeyPatch
) -> None:
    await gateway.add_accounts("tok-a")
    reserve = GatedReserve(gateway)
    monkeypatch.setattr(gateway.services.store, "reserve", reserve)
    request = asyncio.ensure_future(post(gateway, body("hello")))
    # The socket is open and its session created while the store has not answered yet...
    await wait_for(lambda: any(s.session_id for s in fake.mgw_sessions("tok-a")), within=10)
    await asyncio.sleep(0.1)
    (session,) = fake.mgw_sessions("tok-a")
    assert session.items == [] and not request.done()  # ...but the message waits for the query
    reserve.gate.set()
    status, raw, _ = await asyncio.wait_for(request, 10)
    assert status == 200 and msgspec.json.decode(raw)["choices"][0]["message"]["content"]
    assert session.items and session.responses
    await drain()  # what the response settled after its last byte
    got = await gateway.services.store.get_account("tok-a")
    assert got is not None and got.quotas["fast"].remaining is not None  # the window was taken and learned


class _OrderedOpener:
    """A WebSocket opener that notes when a socket is asked for and when its handshake request is out."""

    def __init__(self, inner: Any, events: list[str]) -> None:
        self.inner, self.events = inner, events

    async def websocket(self, url: str, headers: Any, proxy: str, *, on_sent: Any = None) -> Any:
        self.events.append("socket asked for")

        def sent() -> None:
            self.events.append("handshake request sent")
            if on_sent is not None:
                on_sent()

        ws = await self.inner.websocket(url, headers, proxy, on_sent=sent)
        self.events.append("socket open")
        return ws


async def test_the_query_is_taken_once_the_handshake_request_is_out(
    gateway: LiveGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The store's round trip overlaps grok.com's answer to the handshake: not before the request is out (it would
    # hold it up), not after the socket is open (it would hold up the message).
    await gateway.add_accounts("tok-a")
    events: list[str] = []
    client = gateway.services.client
    sockets_for = client.sockets_for
    monkeypatch.setattr(client, "sockets_for", lambda token: _OrderedOpener(sockets_for(token), events))
    real = gateway.services.store.reserve

    async def reserve(account_id: int, mode: str) -> bool:
        events.append("query asked for")
        return await real(account_id, mode)

    monkeypatch.setattr(gateway.services.store, "reserve", reserve)
    status, raw, _ = await post(gateway, body("hello"))
    assert status == 200, raw
    assert events == ["socket asked for", "handshake request sent", "query asked for", "socket open"]


async def test_a_query_the_store_refuses_sends_nothing_and_another_account_serves(
    gateway: LiveGateway, fake: FakeGrok, monkeypatch: pytest.MonkeyPatch, chat_transport: str
) -> None:
    await gateway.add_accounts("tok-a", "tok-b")
    ids = await account_ids(gateway)
    reserve = GatedReserve(gateway, refuse={ids["tok-a"]})
    reserve.gate.set()
    monkeypatch.setattr(gateway.services.store, "reserve", reserve)
    sent = 0
    while ids["tok-a"] not in reserve.asked and sent < 60:  # ties are broken at random: until tok-a was offered
        status, raw, _ = await post(gateway, body("hello"))
        assert status == 200 and msgspec.json.decode(raw)["choices"][0]["message"]["content"]
        sent += 1
    assert ids["tok-a"] in reserve.asked  # (60 coin flips all landing on tok-b: one chance in 2**60)
    chats = [c for c in upstream_chats(fake) if c.message]
    assert [c.token for c in chats] == ["tok-b"] * sent  # tok-a never carried a message, over either transport
    await drain()  # what the answers settled after their last byte
    assert gateway.services.pool.total_in_flight() == 0


async def test_every_query_refused_is_a_429_with_nothing_sent(
    gateway: LiveGateway, fake: FakeGrok, monkeypatch: pytest.MonkeyPatch
) -> None:
    await gateway.add_accounts("tok-a")
    ids = await account_ids(gateway)
    reserve = GatedReserve(gateway, refuse={ids["tok-a"]})
    reserve.gate.set()
    monkeypatch.setattr(gateway.services.store, "reserve", reserve)
    status, raw, _ = await post(gateway, body("hello", stream=True))
    assert status == 429, raw
    assert all(s.items == [] for s in fake.mgw_sessions("tok-a"))
    assert gateway.services.pool.total_in_flight() == 0


async def test_turns_beyond_the_setup_places_wait_and_every_place_comes_back(
    gateway: LiveGateway, fake: FakeGrok, monkeypatch: pytest.MonkeyPatch
) -> None:
    await gateway.add_accounts("tok-a", "tok-b")
    setups = asyncio.Semaphore(1)  # one turn set up at a time in this worker
    monkeypatch.setattr(gateway.services.gateway, "setups", setups)
    reserve = GatedReserve(gateway)
    monkeypatch.setattr(gateway.services.store, "reserve", reserve)
    first = asyncio.ensure_future(post(gateway, body("one")))
    second = asyncio.ensure_future(post(gateway, body("two", stream=True)))
    await wait_for(lambda: len(fake.mgw_sessions()) == 1, within=10)
    await asyncio.sleep(0.2)
    assert len(fake.mgw_sessions()) == 1  # the other turn waits for the place, not for grok.com's answer
    reserve.gate.set()
    (s1, _, _), (s2, _, _) = await asyncio.wait_for(asyncio.gather(first, second), 20)
    assert (s1, s2) == (200, 200) and len(fake.mgw_sessions()) == 2
    # A turn that fails before its message went out gives its place back too.
    fake.push_fault("mgw-500", count=10)
    status, _, _ = await post(gateway, body("three"))
    assert status == 502
    fake.clear()
    assert not setups.locked()
    status, _, _ = await post(gateway, body("four"))
    assert status == 200


async def test_waiting_for_a_setup_place_counts_towards_the_first_response_timeout(
    gateway: LiveGateway, fake: FakeGrok, monkeypatch: pytest.MonkeyPatch
) -> None:
    await gateway.add_accounts("tok-a")
    await gateway.settings(stream_first_response_timeout=0.5)
    monkeypatch.setattr(gateway.services.gateway, "setups", asyncio.Semaphore(0))  # every place is taken
    status, raw, took = await post(gateway, body("hello"))
    assert status == 504 and took < 10, raw  # it waited for a place as long as it would have for grok.com
    assert fake.mgw_sessions() == []  # and never opened a socket
    assert gateway.services.pool.total_in_flight() == 0
