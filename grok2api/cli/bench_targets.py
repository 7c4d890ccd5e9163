"""What ``grok2api bench`` measures against: the fake grok.com reached directly, with the gateway's own
protocol code, and the gateway's ``/v1/chat/completions``. Every target reads one turn the same way:
``on_token`` for each piece of answer text, BenchError unless the answer arrived whole."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, Protocol

import aiohttp
import msgspec

from ..grok.chat import mode_chat_payload
from ..grok.client import GrokClient
from ..grok.events import End, ErrorEvent, Event, Text
from ..grok.headers import ws_headers
from ..grok.mgw import mgw_url, session_create, stream_mgw
from ..grok.mgw_events import MgwParser
from ..grok.transport import Transport
from ..settings import RuntimeSettings
from .bench_http import HttpClient
from .bench_procs import BenchError

MODE, MODEL = "fast", "grok-fast"  # the mode the gateway's grok-fast asks for
_ENC = msgspec.json.Encoder()
_DEC = msgspec.json.Decoder()

OnToken = Callable[[], None]


def ignore() -> None:
    pass


class Target(Protocol):
    async def stream(self, message: str, on_token: OnToken) -> None:
        """One streamed turn; ``on_token`` for each piece of answer text. BenchError unless complete."""

    async def full(self, message: str) -> None:
        """One turn read to its end."""


class _Tokens:
    """The accounts' tokens, taken in turn."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self.tokens = list(tokens)
        self._n = 0

    def next(self) -> str:
        self._n += 1
        return self.tokens[self._n % len(self.tokens)]


async def _drain(events: AsyncGenerator[list[Event], None], on_token: OnToken) -> None:
    """Read one turn's events as the gateway would: answer text, an error, the end."""
    ended = False
    try:
        async for batch in events:
            for event in batch:
                if isinstance(event, Text):
                    if event.text:
                        on_token()
                elif isinstance(event, ErrorEvent):
                    raise BenchError(f"grok.com error: {event.message[:80]}")
                elif isinstance(event, End):
                    ended = True
    finally:
        await events.aclose()
    if not ended:
        raise BenchError("the answer ended without its final event")


class DirectWs:
    """The fake over the chat WebSocket, as the gateway reaches it: each account's user id from
    ``/api/auth/session`` once, then per turn a socket, ``session.create``, the message and
    ``response.create``, read until ``response.done``."""

    def __init__(self, transport: Transport, settings: RuntimeSettings, tokens: Sequence[str]) -> None:
        self.transport, self.settings, self.tokens = transport, settings, _Tokens(tokens)
        self.user_ids: dict[str, str] = {}

    async def warm_up(self) -> None:
        client = GrokClient(self.transport)
        ids = await asyncio.gather(*(client.auth_session(t, self.settings) for t in self.tokens.tokens))
        self.user_ids = dict(zip(self.tokens.tokens, ids, strict=True))

    def _turn(self, message: str) -> AsyncGenerator[list[Event], None]:
        token = self.tokens.next()
        return stream_mgw(self.transport, token, self.user_ids[token], MODE, message, (), self.settings)

    async def stream(self, message: str, on_token: OnToken) -> None:
        await _drain(self._turn(message), on_token)

    async def full(self, message: str) -> None:
        await _drain(self._turn(message), ignore)

    async def setup(self) -> tuple[float, float]:
        """One turn's set-up alone: (handshake, handshake + session.create until the session is ready)."""
        token = self.tokens.next()
        user_id = self.user_ids[token]
        start = time.perf_counter()
        ws = await self.transport.websocket(
            mgw_url(self.settings.upstream_url, user_id), ws_headers(token, user_id, self.settings), ""
        )
        try:
            opened = time.perf_counter()
            await ws.send_json(session_create(MODE, self.settings))
            parser = MgwParser()
            while not parser.ready:
                frame = await ws.receive_text()
                if frame is None:
                    raise BenchError("the fake closed the socket before the session was ready")
                parser.feed(frame)
                if parser.done:
                    raise BenchError(f"the session did not open: {parser.failure}")
            ready = time.perf_counter()
        finally:
            await ws.close()
        return opened - start, ready - start


class DirectRest:
    """The fake over REST, as the gateway reaches it: the mode-era body to ``conversations/new``."""

    def __init__(self, transport: Transport, settings: RuntimeSettings, tokens: Sequence[str]) -> None:
        self.client, self.settings, self.tokens = GrokClient(transport), settings, _Tokens(tokens)

    async def warm_up(self) -> None:
        await self.full("[[tokens:3]] warm up")

    def _turn(self, message: str) -> AsyncGenerator[list[Event], None]:
        payload = mode_chat_payload(MODE, message, [], self.settings)
        return self.client.stream_chat(self.tokens.next(), payload, self.settings)

    async def stream(self, message: str, on_token: OnToken) -> None:
        await _drain(self._turn(message), on_token)

    async def full(self, message: str) -> None:
        await _drain(self._turn(message), ignore)


class _SseReader:
    """A chat completion stream's lines as they arrive: counts the content tokens, notes ``[DONE]``, raises on an
    error frame."""

    def __init__(self, on_token: OnToken) -> None:
        self.on_token = on_token
        self.tokens = 0
        self.done = False
        self.rest = b""

    def feed(self, data: bytes) -> None:
        lines = (self.rest + data).split(b"\n") if self.rest else data.split(b"\n")
        self.rest = lines.pop()
        for line in lines:
            self.line(line)

    def line(self, line: bytes) -> None:
        if line.startswith(b'data: {"error"'):
            raise BenchError(f"gateway error: {line[6:86].decode(errors='replace')}")
        if line.startswith(b"data: [DONE]"):
            self.done = True
        elif line.startswith(b"data: {") and b'"content":"' in line and b'"content":""' not in line:
            self.tokens += 1
            self.on_token()

    def check(self) -> None:
        if not self.done or not self.tokens:
            raise BenchError("the gateway's stream ended early")


def _chat_body(message: str, stream: bool) -> bytes:
    return _ENC.encode({"model": MODEL, "stream": stream, "messages": [{"role": "user", "content": message}]})


def _check_completion(status: int, raw: bytes) -> None:
    if status != 200:
        raise BenchError(f"gateway answered {status}: {raw[:80].decode(errors='replace')}")
    answer = _DEC.decode(raw)
    if not answer["choices"][0]["message"]["content"]:
        raise BenchError("the gateway answered with no text")


class Gateway:
    """The gateway's ``/v1/chat/completions``, streamed (SSE) or not, over the bench's own HTTP client
    (``bench_http``). A stream's first token is its first content delta; the response's status line arrives
    with it (the gateway answers once grok.com's first event is in)."""

    PATH = "/v1/chat/completions"

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    async def stream(self, message: str, on_token: OnToken) -> None:
        sse = _SseReader(on_token)
        async with await self.http.post(self.PATH, _chat_body(message, True)) as answer:
            if answer.status != 200:
                raise BenchError(f"gateway answered {answer.status}: {(await answer.read())[:80]!r}")
            async for chunk in answer.chunks():
                sse.feed(chunk)
        sse.check()

    async def full(self, message: str) -> None:
        async with await self.http.post(self.PATH, _chat_body(message, False)) as answer:
            raw = await answer.read()
        _check_completion(answer.status, raw)


class GatewayAiohttp:
    """``Gateway`` through aiohttp's client, for the c=1 rows' figures as an aiohttp user sees them."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, f"{url}{Gateway.PATH}"

    def _post(self, message: str, stream: bool) -> Any:
        body = _chat_body(message, stream)
        return self.http.post(self.url, data=body, headers={"Content-Type": "application/json"})

    async def stream(self, message: str, on_token: OnToken) -> None:
        sse = _SseReader(on_token)
        async with self._post(message, True) as resp:
            if resp.status != 200:
                raise BenchError(f"gateway answered {resp.status}: {(await resp.text())[:80]}")
            async for line in resp.content:
                sse.line(line)
        sse.check()

    async def full(self, message: str) -> None:
        async with self._post(message, False) as resp:
            raw = await resp.read()
        _check_completion(resp.status, raw)
