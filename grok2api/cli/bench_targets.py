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


class Gateway:
    """The gateway's ``/v1/chat/completions``, streamed (SSE) or not. A stream's first token is its first
    content delta; the response's status line arrives with it (the gateway answers once grok.com's first
    event is in)."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, f"{url}/v1/chat/completions"

    def _post(self, message: str, stream: bool) -> Any:
        body = {"model": MODEL, "stream": stream, "messages": [{"role": "user", "content": message}]}
        return self.http.post(self.url, data=_ENC.encode(body), headers={"Content-Type": "application/json"})

    async def stream(self, message: str, on_token: OnToken) -> None:
        tokens, done = 0, False
        async with self._post(message, True) as resp:
            if resp.status != 200:
                raise BenchError(f"gateway answered {resp.status}: {(await resp.text())[:80]}")
            async for line in resp.content:
                if line.startswith(b'data: {"error"'):
                    raise BenchError(f"gateway error: {line[6:86].decode(errors='replace')}")
                if line.startswith(b"data: [DONE]"):
                    done = True
                elif line.startswith(b"data: {") and b'"content":"' in line and b'"content":""' not in line:
                    tokens += 1
                    on_token()
        if not done or not tokens:
            raise BenchError("the gateway's stream ended early")

    async def full(self, message: str) -> None:
        async with self._post(message, False) as resp:
            raw = await resp.read()
        if resp.status != 200:
            raise BenchError(f"gateway answered {resp.status}: {raw[:80].decode(errors='replace')}")
        answer = _DEC.decode(raw)
        if not answer["choices"][0]["message"]["content"]:
            raise BenchError("the gateway answered with no text")
